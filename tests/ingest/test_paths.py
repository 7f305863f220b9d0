from __future__ import annotations

import pytest

from modelmgr.exceptions import BadPath
from modelmgr.ingest.paths import MAX_PATH_LENGTH, clean_relative_path


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/etc/passwd", "absolute"),
        ("//server/share/x", "absolute"),
        ("C:\\Windows\\x", "backslash"),
        ("C:/Windows/x", "drive letter"),
        ("c:model.onnx", "drive letter"),
        ("\\\\server\\share", "backslash"),
        ("..", "'..' segment"),
        ("../model.onnx", "'..' segment"),
        ("a/../../model.onnx", "'..' segment"),
        ("a/..", "'..' segment"),
        ("a\\b.onnx", "backslash"),
        ("model\x00.onnx", "NUL or control character"),
        ("model\n.onnx", "NUL or control character"),
        ("model\x1b[31m.onnx", "NUL or control character"),
        ("model\x85.onnx", "NUL or control character"),
        ("%2e%2e/model.onnx", "'..' segment once percent-decoded"),
        ("%2E%2E%2Fmodel.onnx", "'..' segment once percent-decoded"),
        ("a/%2e%2e/%2e%2e/x", "'..' segment once percent-decoded"),
        ("%252e%252e%252fx", "'..' segment once percent-decoded"),
        ("%2fetc/passwd", "absolute once percent-decoded"),
        ("model%00.onnx", "NUL or control character once percent-decoded"),
        ("a%5cb", "backslash once percent-decoded"),
        ("a%255cb", "backslash once percent-decoded"),
        (".", "names no file"),
        ("./", "names no file"),
        ("a" * (MAX_PATH_LENGTH + 1), "longer than"),
    ],
)
def test_bad_path_is_refused_naming_the_problem(raw, problem):
    with pytest.raises(BadPath) as caught:
        clean_relative_path(raw)
    assert problem in caught.value.detail
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("model.onnx", "model.onnx"),
        ("./model.onnx", "model.onnx"),
        ("a/./b/model.onnx", "a/b/model.onnx"),
        ("a//b/", "a/b"),
        ("weights/model..bin", "weights/model..bin"),
        ("...", "..."),
        ("a%20b.onnx", "a%20b.onnx"),
        ("unicode-ß/模型.onnx", "unicode-ß/模型.onnx"),
    ],
)
def test_good_path_is_normalised(raw, clean):
    assert clean_relative_path(raw) == clean


def test_path_of_exactly_the_maximum_length_is_accepted():
    raw = "a" * MAX_PATH_LENGTH
    assert clean_relative_path(raw) == raw


def test_error_detail_does_not_echo_control_characters():
    with pytest.raises(BadPath) as caught:
        clean_relative_path("evil\x1b]0;title\x07.onnx")
    assert "\x1b" not in caught.value.detail
    assert "\\x1b" in caught.value.detail
