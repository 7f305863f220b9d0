from __future__ import annotations

import hashlib
import io
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from modelmgr.exceptions import BadPath, IngestRejected, UploadTooLarge, VersionConflict
from modelmgr.ingest.services import (
    incoming_from_local_path,
    incoming_from_upload,
    version_create,
    version_verify,
)
from modelmgr.models import ArtifactFile, AuditEvent, ModelVersion, RegisteredModel, VersionStatus
from modelmgr.storage import ContentStore, content_store
from tests.ingest.support import (
    assert_nothing_stored,
    blob_files,
    incoming,
    incoming_file,
    staged_files,
)
from tests.modelfiles import build_huggingface_folder

pytestmark = pytest.mark.django_db


def create(model, actor, *files, **kwargs):
    return version_create(model=model, actor=actor, files=list(files), **kwargs)


def onnx_file(model_files, tmp_path, path="model.onnx", **kwargs):
    return incoming_file(path, model_files.onnx(tmp_path / "src.onnx", **kwargs))


def test_onnx_version_is_stored_with_rows_blob_and_audit(model_files, tmp_path, tiny_model, owner):
    data = model_files.onnx(tmp_path / "m.onnx").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    version = create(
        tiny_model,
        owner,
        incoming("model.onnx", data),
        fields={
            "description": "first",
            "val_accuracy": 0.9,
            "dependencies": ["onnxruntime>=1.18"],
            "min_vram_mb": 128,
            "production_ready": True,
            "metadata": {"dataset": "toy"},
        },
        source_uri="https://example.org/m.onnx",
    )
    assert (version.version, version.status) == ("1", VersionStatus.AVAILABLE)
    assert version.size_bytes == len(data)
    assert version.content_hash == hashlib.sha256(f"model.onnx\0{sha}\n".encode()).hexdigest()
    assert (version.description, version.val_accuracy, version.min_vram_mb) == ("first", 0.9, 128)
    assert version.metadata == {"dataset": "toy"} and version.production_ready
    assert version.created_by == owner and version.source_uri.endswith("m.onnx")
    artifact = ArtifactFile.objects.get(version=version)
    assert (artifact.path, artifact.sha256, artifact.size, artifact.is_primary) == (
        "model.onnx",
        sha,
        len(data),
        True,
    )
    assert content_store().exists(sha)
    assert staged_files() == []
    tiny_model.refresh_from_db()
    assert tiny_model.framework == "onnx"
    event = AuditEvent.objects.get(action="version.create")
    assert (event.target, event.actor, event.after["framework"]) == ("tiny@1", owner, "onnx")


def test_versions_are_numbered_after_the_highest_integer(model_files, tmp_path, tiny_model, owner):
    for label in ("1", "10", "abc"):
        create(tiny_model, owner, incoming("notes.txt", label.encode()), version=label)
    version = create(tiny_model, owner, incoming("notes.txt", b"next"))
    assert version.version == "11"


def test_duplicate_version_is_a_conflict_and_stores_nothing_new(
    model_files, tmp_path, tiny_model, owner
):
    create(tiny_model, owner, onnx_file(model_files, tmp_path), version="1.0")
    blobs_before = blob_files()
    with pytest.raises(VersionConflict) as caught:
        create(tiny_model, owner, incoming("other.onnx", b"different bytes"), version="1.0")
    assert caught.value.status == 409
    assert caught.value.detail == "model tiny already has version 1.0"
    assert blob_files() == blobs_before
    assert ModelVersion.objects.count() == 1 and ArtifactFile.objects.count() == 1
    assert staged_files() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_versions_give_one_version_and_one_conflict(owner):
    if connection.vendor == "sqlite":
        # The in-memory test database's shared cache has no busy timeout: threads get
        # "table is locked" instead of waiting as the real WAL database does.
        pytest.skip("needs a database with concurrent writers (PostgreSQL)")
    model = RegisteredModel.objects.create(owner=owner, name="race")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(payload: bytes):
        try:
            files = [incoming("notes.txt", payload)]
            barrier.wait()
            version_create(model=model, actor=owner, files=files, version="1")
            outcomes.append("created")
        except VersionConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(p,)) for p in (b"one", b"two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "created"]
    assert ModelVersion.objects.filter(model=model).count() == 1
    assert len(blob_files()) == 1
    assert staged_files() == []


def test_invalid_version_label_is_refused(tiny_model, owner):
    with pytest.raises(IngestRejected, match="invalid version 'two words'"):
        create(tiny_model, owner, incoming("a.txt", b"x"), version="two words")
    assert_nothing_stored()


def test_empty_file_is_refused(tiny_model, owner):
    with pytest.raises(IngestRejected, match="'model.onnx' is empty"):
        create(tiny_model, owner, incoming("model.onnx", b""), incoming("b.txt", b"x"))
    assert_nothing_stored()


def test_version_without_files_is_refused(tiny_model, owner):
    with pytest.raises(IngestRejected, match="at least one file"):
        create(tiny_model, owner)
    assert_nothing_stored()


def test_the_same_path_twice_is_refused(tiny_model, owner):
    with pytest.raises(IngestRejected, match="more than once"):
        create(tiny_model, owner, incoming("a.txt", b"x"), incoming("a.txt", b"y"))
    assert_nothing_stored()


def test_unnormalised_incoming_path_is_refused(tiny_model, owner):
    with pytest.raises(BadPath):
        create(tiny_model, owner, incoming("../a.txt", b"x"))
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"train_accuracy": "high"}, "field train_accuracy must be a number"),
        ({"val_accuracy": True}, "field val_accuracy must be a number"),
        ({"test_accuracy": float("nan")}, "field test_accuracy must be a finite number"),
        ({"dependencies": "torch"}, "field dependencies must be a list of strings"),
        ({"min_vram_mb": -1}, "field min_vram_mb must be a non-negative integer"),
        ({"production_ready": "yes"}, "field production_ready must be true or false"),
        ({"metadata": ["a"]}, "field metadata must be a JSON object"),
        ({"quantization": "x" * 40}, "field quantization must be at most 32 characters"),
        ({"description": 3}, "field description must be a string"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(tiny_model, owner, fields, problem):
    with pytest.raises(IngestRejected) as caught:
        create(tiny_model, owner, incoming("a.txt", b"x"), fields=fields)
    assert caught.value.status == 422
    assert problem in caught.value.detail
    assert_nothing_stored()


def test_identical_files_are_stored_once(model_files, tmp_path, tiny_model, owner):
    first = create(tiny_model, owner, onnx_file(model_files, tmp_path))
    second = create(
        tiny_model,
        owner,
        onnx_file(model_files, tmp_path, "a.onnx"),
        onnx_file(model_files, tmp_path, "copy/b.onnx"),
    )
    shas = set(ArtifactFile.objects.values_list("sha256", flat=True))
    assert len(shas) == 1 and len(blob_files()) == 1
    assert first.content_hash != second.content_hash
    assert staged_files() == []


def test_failure_while_committing_removes_only_new_blobs(
    model_files, tmp_path, tiny_model, owner, monkeypatch
):
    existing = create(tiny_model, owner, incoming("shared.txt", b"shared bytes"))
    original = ContentStore.commit
    calls = []

    def failing_commit(self, staged):
        calls.append(staged.sha256)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, staged)

    monkeypatch.setattr(ContentStore, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        create(
            tiny_model,
            owner,
            incoming("a.txt", b"new bytes"),
            incoming("shared.txt", b"shared bytes"),
            incoming("z.txt", b"more new bytes"),
        )
    assert ModelVersion.objects.get() == existing
    assert [p.name for p in blob_files()] == [hashlib.sha256(b"shared bytes").hexdigest()]
    assert staged_files() == []


def test_upload_through_the_request_becomes_a_version(model_files, tmp_path, tiny_model, owner):
    data = model_files.onnx(tmp_path / "m.onnx").read_bytes()
    upload = io.BytesIO(data)
    upload.name = "detector.onnx"
    body = encode_multipart(BOUNDARY, {"file": upload})
    request = RequestFactory().generic("POST", "/up", body, content_type=MULTIPART_CONTENT)
    files = incoming_from_upload(request.FILES["file"])
    version = create(tiny_model, owner, *files)
    request.close()
    assert version.primary_file.path == "detector.onnx"
    assert staged_files() == []
    assert len(blob_files()) == 1


@pytest.mark.parametrize(
    ("name", "path"),
    [("%2e%2e", None), ("m.onnx", "../m.onnx"), ("m.onnx", "a\x00b"), ("m.onnx", "/abs")],
)
def test_bad_upload_path_is_refused_and_the_upload_removed(name, path):
    with pytest.raises(BadPath):
        incoming_from_upload(SimpleUploadedFile(name, b"bytes"), path=path)
    assert staged_files() == []


def test_oversize_upload_is_refused(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 4
    with pytest.raises(UploadTooLarge):
        incoming_from_upload(SimpleUploadedFile("m.bin", b"12345"))
    assert staged_files() == []


def test_local_folder_is_staged_with_progress(tmp_path):
    folder = build_huggingface_folder(tmp_path / "hf")
    progress: list[int] = []
    files = incoming_from_local_path(folder, progress=progress.append)
    assert sorted(f.path for f in files) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert sum(progress) == sum(p.stat().st_size for p in folder.iterdir())
    assert len(staged_files()) == 3


def test_local_folder_with_a_symlink_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"x")
    (folder / "secret").symlink_to("/etc/passwd")
    with pytest.raises(IngestRejected, match="symbolic link"):
        incoming_from_local_path(folder)
    assert staged_files() == []


def test_verify_passes_for_intact_files(model_files, tmp_path, tiny_model, owner):
    version = create(tiny_model, owner, onnx_file(model_files, tmp_path))
    result = version_verify(version=version, actor=owner)
    assert result == {"ok": True, "files": [{"path": "model.onnx", "ok": True, "detail": ""}]}
    version.refresh_from_db()
    assert version.status == VersionStatus.AVAILABLE
    assert AuditEvent.objects.filter(action="version.verify", outcome="ok").count() == 1


def test_verify_marks_a_corrupted_version_as_error(tiny_model, owner):
    version = create(tiny_model, owner, incoming("a.txt", b"good"), incoming("b.txt", b"fine"))
    blob = content_store().local_path(hashlib.sha256(b"good").hexdigest())
    blob.write_bytes(b"evil")
    result = version_verify(version=version, actor=owner)
    assert result["ok"] is False
    assert [f["ok"] for f in result["files"]] == [False, True]
    assert "corrupt" in result["files"][0]["detail"]
    version.refresh_from_db()
    assert version.status == VersionStatus.ERROR
    assert "a.txt" in version.error
    event = AuditEvent.objects.get(action="version.verify")
    assert event.outcome == "error" and event.after["failed"] == ["a.txt"]


def test_verify_reports_a_missing_blob(tiny_model, owner):
    version = create(tiny_model, owner, incoming("a.txt", b"good"))
    content_store().local_path(hashlib.sha256(b"good").hexdigest()).unlink()
    result = version_verify(version=version, actor=owner)
    assert result["ok"] is False and "missing" in result["files"][0]["detail"]


@pytest.mark.parametrize(
    "framework",
    ["onnx", "torchscript", "torch_export", "safetensors", "pytorch_state_dict", "huggingface"],
)
def test_declared_framework_on_unrecognised_bytes_must_pass_its_inspector(
    tiny_model, owner, framework
):
    with pytest.raises(IngestRejected) as caught:
        create(
            tiny_model,
            owner,
            incoming("blob.dat", b"\x01\x02 not a model " * 20),
            framework=framework,
        )
    assert caught.value.status == 422
    assert_nothing_stored()


@pytest.mark.parametrize("framework", ["keras", "tensorflow", "other"])
def test_declared_framework_without_an_inspector_is_recorded(tiny_model, owner, framework):
    version = create(tiny_model, owner, incoming("blob.dat", b"bytes"), framework=framework)
    assert version.framework == framework
    assert "not inspected" in version.inspection["notes"]


def test_unknown_framework_string_is_refused_and_nothing_stored(tiny_model, owner):
    with pytest.raises(IngestRejected, match="unknown framework 'tensorrt'; allowed values"):
        create(tiny_model, owner, incoming("a.txt", b"x"), framework="tensorrt")
    assert_nothing_stored()


def test_contradicting_framework_is_refused_and_nothing_stored(
    model_files, tmp_path, tiny_model, owner
):
    with pytest.raises(IngestRejected, match="framework 'safetensors' contradicts the content"):
        create(tiny_model, owner, onnx_file(model_files, tmp_path), framework="safetensors")
    assert_nothing_stored()
