from __future__ import annotations

from pathlib import Path

import pytest

from modelmgr.models import RegisteredModel
from tests.modelfiles import build_onnx_external_data


@pytest.fixture
def tiny_model(owner) -> RegisteredModel:
    return RegisteredModel.objects.create(owner=owner, name="tiny")


@pytest.fixture(scope="session")
def onnx_external_folder(tmp_path_factory) -> Path:
    """model.onnx + weights.bin (external data), built once per session; read-only."""
    folder = tmp_path_factory.mktemp("onnx-external")
    build_onnx_external_data(folder)
    return folder
