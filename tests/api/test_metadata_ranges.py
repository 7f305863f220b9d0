"""Every numeric metadata field has a range: out of range is a 422 naming the field."""

from __future__ import annotations

import pytest

from modelmgr.models import ModelVersion
from tests.api.helpers import staged_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def onnx_path(model_files, tmp_path):
    return model_files.onnx(tmp_path / "upload" / "model.onnx")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_vram_mb", "39111145033970303017800433664"),  # overflowed SQLite: a 500
        ("min_vram_mb", str(2**31)),
        ("val_accuracy", "2e244"),
        ("train_accuracy", "1.5"),
        ("test_accuracy", "-0.1"),
        ("train_loss", "inf"),
        ("train_loss", "1e300"),
        ("train_loss", "-1"),
    ],
)
def test_upload_with_a_number_out_of_range_is_422_naming_the_field(api, onnx_path, field, value):
    response = upload(api, "det", onnx_path, **{field: value})
    assert response.status_code == 422, response.content
    assert field in response.json()["detail"]
    assert not ModelVersion.objects.exists()
    assert staged_files() == []


def test_edit_with_a_number_out_of_range_is_422_and_changes_nothing(api, onnx_path):
    upload(api, "det", onnx_path, version="1", val_accuracy="0.5")
    url = "/api/v1/models/det/versions/1"
    for body in (
        {"val_accuracy": 2e244},
        {"min_vram_mb": 39111145033970303017800433664},
        {"train_loss": 1e300},
    ):
        response = api.patch(url, body, content_type="application/json")
        assert response.status_code == 422, response.content
        assert next(iter(body)) in response.json()["detail"]
    version = ModelVersion.objects.get()
    assert version.val_accuracy == 0.5 and version.min_vram_mb is None


def test_numbers_at_the_ends_of_their_ranges_are_stored(api, onnx_path):
    response = upload(
        api, "det", onnx_path, val_accuracy="1", train_accuracy="0", min_vram_mb=str(2**31 - 1)
    )
    assert response.status_code == 201, response.content
    assert response.json()["val_accuracy"] == 1.0 and response.json()["min_vram_mb"] == 2**31 - 1
