"""Fixtures shared by the deploy tests."""

from __future__ import annotations

import pytest

from tests.inference.support import make_slot, onnx_version


@pytest.fixture
def det(owner, model_files, tmp_path):
    """Slot det (task classifier) serving clf@1 (ONNX, x [batch, 4] -> y [batch, 2])."""
    version = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    make_slot("det", version, task="classifier")
    return version
