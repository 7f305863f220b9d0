"""Fixtures for page tests: logged-in clients and registry rows with real stored bytes."""

from __future__ import annotations

import re

import pytest

from tests.registry.factories import make_model, make_version

HTMX = {"HTTP_HX_REQUEST": "true"}


def table_row(html: str, needle: str) -> str:
    """The ``<tr>`` of a page's table that holds ``needle``."""
    for row in re.findall(r"<tr[ >].*?</tr>", html, re.S):
        if needle in row:
            return row
    raise AssertionError(f"no table row holds {needle!r}")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def catalogue(owner, other_user):
    """Five of the owner's models (tags, tasks, VRAM needs) and one of someone else."""
    yolo = make_model(
        owner,
        "yolo-small",
        task="detector",
        framework="onnx",
        description="fast detector",
        tags=("vision", "edge"),
    )
    make_version(yolo, "1", framework="onnx", min_vram_mb=512, production_ready=True)
    pose = make_model(owner, "pose-net", task="pose", framework="torchscript", tags=("vision",))
    make_version(pose, "1", framework="torchscript", min_vram_mb=4096)
    walker = make_model(owner, "walker", task="policy", framework="onnx", tags=("robot",))
    make_version(walker, "3", framework="onnx")
    make_model(owner, "empty-one", task="other")
    llm = make_model(owner, "tiny-llm", task="llm", framework="safetensors")
    make_version(llm, "0.1", framework="safetensors", min_vram_mb=24000)
    secret = make_model(other_user, "oscars-secret", task="detector", framework="onnx")
    make_version(secret, "1", framework="onnx")
    return {"yolo": yolo, "pose": pose, "walker": walker, "llm": llm, "secret": secret}


# The imports page reuses the import tests' real file server and settings.
from tests.imports.conftest import import_settings, onnx_data, server  # noqa: E402, F401
