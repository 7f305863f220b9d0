"""The artifact store on a real S3 server (SeaweedFS): the local store's guarantees."""

from __future__ import annotations

import hashlib
import time

import pytest

from modelmgr.exceptions import IntegrityFailure
from modelmgr.ingest.services import version_verify
from modelmgr.models import BlobBlocks, ModelVersion, VersionStatus
from modelmgr.registry.gc import store_sweep
from modelmgr.storage import content_store, stage_file
from modelmgr.storage_s3 import S3ContentStore
from tests.api.helpers import body_of, staged_files, stored_blobs, upload
from tests.s3.conftest import PART

pytestmark = pytest.mark.django_db


def write_safetensors(path, payload: int, *, seed: int = 0):
    """A valid safetensors file (one uint8 tensor) of ``payload`` bytes of data."""
    import json
    import random
    import struct

    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random.Random(seed).randbytes(payload)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


@pytest.fixture
def onnx_file(model_files, tmp_path):
    return model_files.onnx(tmp_path / "upload" / "model.onnx")


def test_content_store_is_the_s3_store(s3_store):
    store = content_store()
    assert isinstance(store, S3ContentStore)
    assert store.bucket == s3_store.bucket and store.prefix == s3_store.prefix


def test_an_upload_through_the_api_lands_in_s3_under_its_sha256(api, s3_store, onnx_file):
    response = upload(api, "det", onnx_file, version="1")
    assert response.status_code == 201, response.content
    data = onnx_file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert ModelVersion.objects.get().files.get().sha256 == sha
    assert s3_store.keys() == [s3_store.key(sha)]
    assert s3_store.get(sha) == data
    assert stored_blobs() == [] and staged_files() == []  # nothing kept on local disk
    assert s3_store.uploads() == []


def test_identical_bytes_are_stored_once_and_not_sent_again(api, s3_store, onnx_file):
    assert upload(api, "det", onnx_file, version="1").status_code == 201
    sha = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    first = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(sha))
    time.sleep(1.1)  # LastModified has one-second resolution
    assert upload(api, "det", onnx_file, version="2").status_code == 201
    again = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(sha))
    assert s3_store.keys() == [s3_store.key(sha)]
    assert again["LastModified"] == first["LastModified"]  # not uploaded a second time


def test_a_file_over_the_part_size_goes_up_in_parts_and_lands_whole(api, s3_store, tmp_path):
    path = write_safetensors(tmp_path / "big.safetensors", 2 * PART + 12345)
    response = upload(api, "big", path, version="1")
    assert response.status_code == 201, response.content
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert s3_store.get(sha) == path.read_bytes()
    assert s3_store.uploads() == []
    # A multipart object's ETag names its part count.
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(sha))
    assert head["ETag"].strip('"').endswith("-3")


def test_range_downloads_come_from_s3(api, s3_store, onnx_file):
    assert upload(api, "det", onnx_file, version="1").status_code == 201
    data = onnx_file.read_bytes()
    url = "/api/v1/models/det/versions/1/files/model.onnx"
    whole = api.get(url)
    assert whole.status_code == 200 and body_of(whole) == data
    part = api.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and body_of(part) == data[100:200]
    assert part["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = api.get(url, HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and body_of(tail) == data[-10:]
    assert api.get(url, HTTP_RANGE=f"bytes={len(data)}-").status_code == 416


def test_an_upload_over_the_size_limit_leaves_nothing_in_s3(api, s3_store, settings, tmp_path):
    settings.MODELMGR_MAX_UPLOAD_BYTES = PART
    path = write_safetensors(tmp_path / "big.safetensors", PART + 1)
    response = upload(api, "big", path, version="1")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert s3_store.keys() == [] and s3_store.uploads() == []
    assert staged_files() == []


def test_a_staged_file_that_no_longer_matches_its_hash_is_never_published(s3_store, tmp_path):
    """The multipart upload hashes what it sends; a mismatch aborts it: no object, no parts."""
    source = write_safetensors(tmp_path / "w.safetensors", 2 * PART)
    with source.open("rb") as fh:
        staged = stage_file(fh)
    with staged.path.open("r+b") as fh:  # damaged between staging and upload
        fh.seek(PART + 7)
        fh.write(b"\xff")
    with pytest.raises(IntegrityFailure, match="nothing was stored"):
        content_store().put_before_commit(staged)
    assert s3_store.keys() == [] and s3_store.uploads() == []
    assert not BlobBlocks.objects.exists()  # no digests for bytes that were never stored
    staged.discard()


def test_a_rejected_ingest_leaves_nothing_in_s3(api, s3_store, onnx_file):
    assert upload(api, "det", onnx_file, version="1").status_code == 201
    before = s3_store.keys()
    other = onnx_file.parent / "other.onnx"
    other.write_bytes(b"not an onnx model at all" * 10)
    response = upload(api, "det", other, version="2", framework="onnx")
    assert response.status_code in (400, 422)
    assert s3_store.keys() == before and s3_store.uploads() == []


def test_deleting_a_version_collects_its_blob_but_not_a_shared_one(
    api, s3_store, onnx_file, django_capture_on_commit_callbacks
):
    assert upload(api, "det", onnx_file, version="1").status_code == 201
    assert upload(api, "det", onnx_file, version="2").status_code == 201
    assert len(s3_store.keys()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete("/api/v1/models/det/versions/1").status_code in (200, 204)
    assert len(s3_store.keys()) == 1  # version 2 still uses it
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete("/api/v1/models/det/versions/2").status_code in (200, 204)
    assert s3_store.keys() == []


def test_sweep_removes_unreferenced_blobs_and_keeps_used_ones(api, s3_store, onnx_file):
    assert upload(api, "det", onnx_file, version="1").status_code == 201
    used = s3_store.keys()
    orphan = hashlib.sha256(b"put, then the process died before COMMIT").hexdigest()
    s3_store.put(orphan, b"put, then the process died before COMMIT")
    assert store_sweep(older_than_s=3600).blobs == []  # too fresh
    time.sleep(1.1)
    result = store_sweep(older_than_s=0)
    assert [sha for sha, _ in result.blobs] == [orphan]
    assert s3_store.keys() == used


def test_sweep_aborts_stale_multipart_uploads_only(s3_store):
    client = s3_store.client
    key = s3_store.key("ab" * 32)
    stale = client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)["UploadId"]
    client.upload_part(
        Bucket=s3_store.bucket, Key=key, UploadId=stale, PartNumber=1, Body=b"x" * 1000
    )
    assert store_sweep(older_than_s=3600).uploads == []  # an upload may be running
    dry = store_sweep(older_than_s=0, dry_run=True)
    assert dry.uploads == [(key, stale)] and len(s3_store.uploads()) == 1
    time.sleep(1.1)
    assert store_sweep(older_than_s=0).uploads == [(key, stale)]
    assert s3_store.uploads() == [] and s3_store.keys() == []


def test_verify_finds_a_corrupted_object(api, owner, s3_store, onnx_file):
    assert upload(api, "det", onnx_file, version="1").status_code == 201
    version = ModelVersion.objects.get()
    assert version_verify(version=version, actor=owner)["ok"] is True
    sha = version.files.get().sha256
    s3_store.put(sha, b"bit rot" + s3_store.get(sha)[7:])
    report = version_verify(version=version, actor=owner)
    assert report["ok"] is False and "corrupt" in report["files"][0]["detail"]
    version.refresh_from_db()
    assert version.status == VersionStatus.ERROR


def test_an_unreachable_store_is_a_503_naming_it_and_leaves_nothing_staged(
    api, s3_store, onnx_file, settings, monkeypatch
):
    from modelmgr.s3_settings import s3_artifact_storage
    from tests.s3.weed import free_port

    assert upload(api, "det", onnx_file, version="1").status_code == 201
    monkeypatch.setenv("MODELMGR_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MODELMGR_S3_MAX_ATTEMPTS", "1")
    settings.STORAGES = {**settings.STORAGES, "artifacts": s3_artifact_storage(s3_store.url)}
    download = api.get("/api/v1/models/det/versions/1/files/model.onnx")
    assert download.status_code == 503
    assert "artifact store (S3)" in download.json()["detail"]
    response = upload(api, "det", onnx_file, version="2")
    assert response.status_code == 503 and "artifact store (S3)" in response.json()["detail"]
    assert staged_files() == [] and ModelVersion.objects.count() == 1


def test_a_range_of_an_object_shorter_than_recorded_is_refused(api, s3_store, onnx_file):
    assert upload(api, "det", onnx_file, version="1").status_code == 201
    sha = ModelVersion.objects.get().files.get().sha256
    s3_store.put(sha, s3_store.get(sha)[:50])  # truncated behind modelmgr's back
    url = "/api/v1/models/det/versions/1/files/model.onnx"
    with pytest.raises(IntegrityFailure, match="shorter"):
        body_of(api.get(url, HTTP_RANGE="bytes=100-199"))
    with pytest.raises(IntegrityFailure, match="shorter"):
        body_of(api.get(url, HTTP_RANGE="bytes=10-99"))
