"""/models/upload: a real model is stored and its signature shown; a bad one leaves nothing."""

from __future__ import annotations

import io
import zipfile

import pytest

from modelmgr.models import ArtifactFile, AuditEvent, ModelVersion, RegisteredModel
from tests.views.conftest import HTMX


def stored_blobs(root) -> list[str]:
    return (
        sorted(p.name for p in (root / "sha256").rglob("*") if p.is_file())
        if (root / "sha256").exists()
        else []
    )


def staged(root) -> list[str]:
    return sorted(p.name for p in (root / ".staging").rglob("*") if p.is_file())


@pytest.mark.django_db
def test_upload_page_has_a_progress_bar_and_a_multipart_htmx_form(owner_client):
    html = owner_client.get("/models/upload").content.decode()
    assert 'hx-encoding="multipart/form-data"' in html
    assert 'id="upload-bar"' in html and 'role="progressbar"' in html
    assert 'enctype="multipart/form-data"' in html  # works without JavaScript too


@pytest.mark.django_db
def test_uploading_an_onnx_model_stores_it_and_shows_the_inspection(
    owner_client, owner, model_files, tmp_path, isolated_storage
):
    path = model_files.onnx(tmp_path / "mlp.onnx")
    with path.open("rb") as fh:
        response = owner_client.post(
            "/models/upload",
            {
                "file": fh,
                "name": "mlp",
                "task": "classifier",
                "tags": "tiny, demo",
                "val_accuracy": "0.91",
                "min_vram_mb": "64",
                "description": "a tiny mlp",
            },
            **HTMX,
        )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="upload-result">')
    assert "Stored mlp@1" in html
    assert 'class="msg err"' not in html
    # The signature table: input x [batch, 4] float32, output y.
    assert "<code>x</code>" in html and "<code>y</code>" in html
    assert "float32" in html
    version = ModelVersion.objects.get(model__name="mlp")
    assert version.model.owner == owner and version.model.task == "classifier"
    assert version.val_accuracy == pytest.approx(0.91) and version.min_vram_mb == 64
    assert sorted(t.name for t in version.model.tags.all()) == ["demo", "tiny"]
    assert version.framework == "onnx" and version.signature["inputs"][0]["name"] == "x"
    assert stored_blobs(isolated_storage) == [version.files.get().sha256]
    assert staged(isolated_storage) == []
    assert AuditEvent.objects.filter(action="version.create").count() == 1


@pytest.mark.django_db
def test_uploading_a_zipped_folder_unpacks_it(owner_client, model_files, tmp_path):
    onnx = model_files.onnx(tmp_path / "mlp.onnx").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/model.onnx", onnx)
        archive.writestr("model/README.md", b"hello")
    buffer.seek(0)
    buffer.name = "folder.zip"
    response = owner_client.post("/models/upload", {"file": buffer, "name": "zipped"}, **HTMX)
    assert "Stored zipped@1" in response.content.decode()
    paths = sorted(ArtifactFile.objects.values_list("path", flat=True))
    assert paths == ["README.md", "model.onnx"]  # the one top folder is the version


@pytest.mark.django_db
def test_a_corrupt_model_shows_a_red_error_and_stores_nothing(owner_client, isolated_storage):
    bad = io.BytesIO(b"this is not an onnx graph at all" * 100)
    bad.name = "broken.onnx"
    response = owner_client.post("/models/upload", {"file": bad, "name": "broken"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200  # htmx swaps the red box in
    assert 'class="msg err"' in html and "Upload refused." in html
    assert "broken.onnx" in html or "onnx" in html.lower()
    assert not RegisteredModel.objects.exists()
    assert not ModelVersion.objects.exists()
    assert stored_blobs(isolated_storage) == []
    assert staged(isolated_storage) == []
    assert not AuditEvent.objects.filter(outcome="ok").exists()


@pytest.mark.django_db
def test_a_zip_with_a_dotdot_entry_is_refused_in_red(owner_client, isolated_storage):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.onnx", b"x")
    buffer.seek(0)
    buffer.name = "evil.zip"
    response = owner_client.post("/models/upload", {"file": buffer, "name": "evil"}, **HTMX)
    assert 'class="msg err"' in response.content.decode()
    assert not RegisteredModel.objects.exists()
    assert stored_blobs(isolated_storage) == [] and staged(isolated_storage) == []


@pytest.mark.django_db
def test_a_missing_file_or_name_is_named_in_the_error(owner_client):
    response = owner_client.post("/models/upload", {"name": "bad name!"}, **HTMX)
    html = response.content.decode()
    assert "file:" in html and "name:" in html
    assert not RegisteredModel.objects.exists()


@pytest.mark.django_db
def test_a_version_that_exists_is_refused_and_the_bytes_are_not_kept(
    owner_client, model_files, tmp_path, isolated_storage
):
    path = model_files.onnx(tmp_path / "mlp.onnx")
    with path.open("rb") as fh:
        owner_client.post("/models/upload", {"file": fh, "name": "mlp", "version": "1"}, **HTMX)
    other = model_files.onnx(tmp_path / "mlp2.onnx", seed=3)
    with other.open("rb") as fh:
        response = owner_client.post(
            "/models/upload", {"file": fh, "name": "mlp", "version": "1"}, **HTMX
        )
    assert "already has version 1" in response.content.decode()
    assert ModelVersion.objects.count() == 1
    assert len(stored_blobs(isolated_storage)) == 1 and staged(isolated_storage) == []


@pytest.mark.django_db
def test_upload_without_javascript_renders_the_whole_page(owner_client, model_files, tmp_path):
    path = model_files.onnx(tmp_path / "mlp.onnx")
    with path.open("rb") as fh:
        response = owner_client.post("/models/upload", {"file": fh, "name": "plain"})
    html = response.content.decode()
    assert "<nav" in html and "Stored plain@1" in html
