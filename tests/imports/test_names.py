"""The name a downloaded file gets inside its version."""

from __future__ import annotations

import pytest

from modelmgr.imports.names import filename_for


@pytest.mark.parametrize(
    "disposition, url, final_url, expected",
    [
        ('attachment; filename="model.onnx"', "https://h/x", "https://h/x", "model.onnx"),
        (
            "attachment; filename*=UTF-8''mod%C3%A8le.onnx",
            "https://h/x",
            "https://h/x",
            "mod_le.onnx",
        ),
        ('attachment; filename="../../etc/passwd"', "https://h/x", "https://h/x", "passwd"),
        ('attachment; filename="..\\\\secret.pt"', "https://h/x", "https://h/x", "secret.pt"),
        ('attachment; filename=".hidden.onnx"', "https://h/x", "https://h/x", "hidden.onnx"),
        ("", "https://h/org/repo/resolve/main/model.onnx", "https://cdn/a1b2c3", "model.onnx"),
        (
            "",
            "https://h/download?id=3",
            "https://cdn/files/weights.safetensors",
            "weights.safetensors",
        ),
        ("", "https://h/get/latest", "https://h/get/latest", "latest"),
        ("", "https://h/", "https://h/", "download"),
        ("", "https://h/my%20model.onnx", "https://h/my%20model.onnx", "my_model.onnx"),
    ],
)
def test_file_names_are_plain_and_prefer_the_servers_name(disposition, url, final_url, expected):
    assert filename_for(disposition, url, final_url) == expected
