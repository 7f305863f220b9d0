from __future__ import annotations

import json

import pytest

from modelmgr.models import ArtifactFile, AuditEvent, ModelVersion, RegisteredModel, Slot
from tests.api.helpers import staged_files, stored_blobs, upload, zip_of
from tests.conftest import make_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/models"


@pytest.fixture
def onnx_path(model_files, tmp_path):
    return model_files.onnx(tmp_path / "upload" / "model.onnx")


def test_first_upload_registers_the_model_and_returns_the_inspected_version(api, onnx_path):
    response = upload(
        api,
        "yolo-s",
        onnx_path,
        version="1.0",
        task="detector",
        tags="vision, gpu",
        description="tiny",
        val_accuracy="0.9",
        dependencies="numpy>=2, onnxruntime",
        min_vram_mb="512",
        production_ready="true",
        metadata=json.dumps({"dataset": "coco"}),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["ref"] == "yolo-s@1.0" and body["owner"] == "olivia"
    assert body["status"] == "available" and body["framework"] == "onnx"
    assert body["signature"]["inputs"][0]["name"] == "x"
    assert body["signature"]["outputs"][0]["name"] == "y"
    assert body["inspection"]
    assert body["primary_path"] == "model.onnx"
    assert [f["path"] for f in body["files"]] == ["model.onnx"]
    assert body["files"][0]["size"] == onnx_path.stat().st_size
    assert body["val_accuracy"] == 0.9 and body["min_vram_mb"] == 512
    assert body["dependencies"] == ["numpy>=2", "onnxruntime"]
    assert body["production_ready"] is True and body["metadata"] == {"dataset": "coco"}
    model = RegisteredModel.objects.get(name="yolo-s")
    assert model.task == "detector" and model.description == "tiny"
    assert sorted(model.tags.values_list("name", flat=True)) == ["gpu", "vision"]
    assert {e.action for e in AuditEvent.objects.all()} >= {"model.create", "version.create"}
    assert staged_files() == []


def test_upload_to_an_existing_model_adds_a_version_and_its_tags(api, onnx_path):
    upload(api, "det", onnx_path, version="1", task="detector", tags="a")
    response = upload(api, "det", onnx_path, version="2", tags='["b"]')
    assert response.status_code == 201, response.content
    assert RegisteredModel.objects.count() == 1
    model = RegisteredModel.objects.get()
    assert sorted(model.tags.values_list("name", flat=True)) == ["a", "b"]
    assert api.get(f"{URL}/det").json()["latest_version"] == "2"


def test_upload_without_version_numbers_it(api, onnx_path):
    assert upload(api, "det", onnx_path).json()["version"] == "1"
    assert upload(api, "det", onnx_path).json()["version"] == "2"


def test_duplicate_version_is_409_and_stores_nothing(api, onnx_path, model_files, tmp_path):
    upload(api, "det", onnx_path, version="1")
    blobs_before = stored_blobs()
    other = model_files.onnx(tmp_path / "other" / "model.onnx", seed=7)
    response = upload(api, "det", other, version="1")
    assert response.status_code == 409
    assert "already has version 1" in response.json()["detail"]
    assert stored_blobs() == blobs_before
    assert ModelVersion.objects.count() == 1 and ArtifactFile.objects.count() == 1
    assert staged_files() == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"metadata": "{not json"}, "metadata is not valid JSON"),
        ({"metadata": "[1, 2]"}, "metadata must be a JSON object"),
        ({"dependencies": "[oops"}, "dependencies is not valid JSON"),
        ({"min_vram_mb": "lots"}, "min_vram_mb"),
        ({"task": "juggler"}, "task 'juggler'"),
        ({"tags": "no spaces please"}, "tag 'no spaces please'"),
        ({"version": "bad version!"}, "invalid version"),
        ({"framework": "caffe"}, "caffe"),
    ],
)
def test_bad_form_field_is_422_and_stores_nothing(api, onnx_path, form, message):
    response = upload(api, "det", onnx_path, **form)
    assert response.status_code == 422, response.content
    assert message in response.json()["detail"]
    assert not RegisteredModel.objects.exists() and not ModelVersion.objects.exists()
    assert stored_blobs() == [] and staged_files() == []
    assert not AuditEvent.objects.exists()


def test_upload_without_a_file_is_422_naming_it(api):
    response = api.post(f"{URL}/det/versions", {"version": "1"})
    assert response.status_code == 422 and "file" in response.json()["detail"]
    assert not RegisteredModel.objects.exists()


def test_upload_with_a_task_other_than_the_models_is_409(api, onnx_path):
    upload(api, "det", onnx_path, task="detector")
    response = upload(api, "det", onnx_path, task="policy")
    assert response.status_code == 409 and "'detector'" in response.json()["detail"]
    assert ModelVersion.objects.count() == 1 and staged_files() == []


def test_upload_of_a_corrupt_model_is_422_and_stores_nothing(api, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf at all")
    response = upload(api, "det", broken, version="1")
    assert response.status_code == 422, response.content
    assert response.json()["detail"]
    assert not RegisteredModel.objects.exists()
    assert stored_blobs() == [] and staged_files() == []


def test_zip_upload_keeps_every_file(api, onnx_path, tmp_path):
    archive = zip_of(
        {"model.onnx": onnx_path.read_bytes(), "labels.txt": b"cat\ndog\n"}, tmp_path / "bundle.zip"
    )
    response = upload(api, "det", archive, version="1", primary_path="model.onnx")
    assert response.status_code == 201, response.content
    assert sorted(f["path"] for f in response.json()["files"]) == ["labels.txt", "model.onnx"]


def test_staff_can_upload_to_another_users_model(client, owner, staff, onnx_path):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(owner)}"
    upload(client, "det", onnx_path, version="1")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff)}"
    response = upload(client, "det", onnx_path, version="2", owner="olivia")
    assert response.status_code == 201 and response.json()["owner"] == "olivia"
    assert not RegisteredModel.objects.filter(owner=staff).exists()


def test_list_get_and_resolve_versions(api, onnx_path):
    for number in ("1", "2", "3"):
        upload(api, "det", onnx_path, version=number)
    ModelVersion.objects.filter(version="3").update(status="archived")
    listed = api.get(f"{URL}/det/versions", {"limit": 2}).json()
    assert [v["version"] for v in listed["items"]] == ["3", "2"]
    rest = api.get(f"{URL}/det/versions", {"limit": 2, "cursor": listed["next_cursor"]}).json()
    assert [v["version"] for v in rest["items"]] == ["1"] and rest["next_cursor"] is None
    assert api.get(f"{URL}/det/versions/1").json()["ref"] == "det@1"
    assert api.get("/api/v1/versions/det@3").json()["version"] == "3"
    assert api.get("/api/v1/versions/det").json()["version"] == "2"
    assert api.get("/api/v1/versions/olivia/det@1").json()["version"] == "1"
    missing = api.get(f"{URL}/det/versions/9")
    assert missing.status_code == 404 and "det@9" in missing.json()["detail"]
    assert api.get("/api/v1/versions/nothing").status_code == 404


def test_resolving_a_malformed_ref_is_422(api):
    response = api.get("/api/v1/versions/a@b@c")
    assert response.status_code == 422 and "not a model reference" in response.json()["detail"]


def test_patch_version_metadata_and_archive(api, onnx_path):
    upload(api, "det", onnx_path, version="1")
    response = api.patch(
        f"{URL}/det/versions/1",
        {"val_accuracy": 0.8, "metadata": {"k": "v"}},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["val_accuracy"] == 0.8 and response.json()["metadata"] == {"k": "v"}
    archived = api.patch(
        f"{URL}/det/versions/1", {"status": "archived"}, content_type="application/json"
    )
    assert archived.json()["status"] == "archived"
    event = AuditEvent.objects.get(action="version.archive")
    assert event.before["status"] == "available" and event.after["status"] == "archived"


def test_patch_with_unknown_status_is_422(api, onnx_path):
    upload(api, "det", onnx_path, version="1")
    response = api.patch(
        f"{URL}/det/versions/1", {"status": "deleted"}, content_type="application/json"
    )
    assert response.status_code == 422 and "status" in response.json()["detail"]


def test_archive_of_a_served_version_is_409(api, onnx_path):
    upload(api, "det", onnx_path, version="1")
    Slot.objects.create(name="detector", active_version=ModelVersion.objects.get())
    response = api.patch(
        f"{URL}/det/versions/1", {"status": "archived"}, content_type="application/json"
    )
    assert response.status_code == 409 and "detector" in response.json()["detail"]


def test_delete_version_and_its_blob(api, onnx_path, django_capture_on_commit_callbacks):
    upload(api, "det", onnx_path, version="1")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"{URL}/det/versions/1")
    assert response.status_code == 204
    assert not ModelVersion.objects.exists() and stored_blobs() == []
    assert AuditEvent.objects.filter(action="version.delete").count() == 1


def test_delete_of_a_served_version_is_409_naming_the_slot(api, onnx_path):
    upload(api, "det", onnx_path, version="1")
    Slot.objects.create(name="front-camera", canary_version=ModelVersion.objects.get())
    response = api.delete(f"{URL}/det/versions/1")
    assert response.status_code == 409 and "front-camera" in response.json()["detail"]
    assert ModelVersion.objects.exists() and len(stored_blobs()) == 1


def test_upload_over_the_size_limit_is_413_and_stores_nothing(api, onnx_path, settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 100
    response = upload(api, "det", onnx_path, version="1")
    assert response.status_code == 413, response.content
    assert "limit" in response.json()["detail"]
    assert not RegisteredModel.objects.exists()
    assert stored_blobs() == [] and staged_files() == []


def test_upload_with_an_escaping_path_is_400_and_stores_nothing(api, onnx_path):
    response = upload(api, "det", onnx_path, version="1", path="../../etc/model.onnx")
    assert response.status_code == 400, response.content
    assert response.json()["detail"]
    assert not RegisteredModel.objects.exists()
    assert stored_blobs() == [] and staged_files() == []
