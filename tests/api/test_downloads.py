from __future__ import annotations

import io
import zipfile

import pytest

from modelmgr.models import AuditEvent, ModelVersion
from modelmgr.storage import content_store
from tests.api.helpers import body_of, upload, zip_of

pytestmark = pytest.mark.django_db

FILE = "/api/v1/models/det/versions/1/files/model.onnx"


@pytest.fixture
def onnx_bytes(api, model_files, tmp_path) -> bytes:
    path = model_files.onnx(tmp_path / "upload" / "model.onnx")
    assert upload(api, "det", path, version="1").status_code == 201
    return path.read_bytes()


def test_whole_file_download_has_the_right_headers(api, onnx_bytes):
    response = api.get(FILE)
    assert response.status_code == 200
    assert body_of(response) == onnx_bytes
    sha = ModelVersion.objects.get().files.get().sha256
    assert response["ETag"] == f'"{sha}"'
    assert response["Content-Length"] == str(len(onnx_bytes))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] != "text/html"
    assert 'filename="model.onnx"' in response["Content-Disposition"]


def test_first_bytes_range_is_206(api, onnx_bytes):
    response = api.get(FILE, HTTP_RANGE="bytes=0-15")
    assert response.status_code == 206
    assert body_of(response) == onnx_bytes[:16]
    assert response["Content-Range"] == f"bytes 0-15/{len(onnx_bytes)}"
    assert response["Content-Length"] == "16"


def test_suffix_range_returns_the_last_bytes(api, onnx_bytes):
    response = api.get(FILE, HTTP_RANGE="bytes=-10")
    assert response.status_code == 206
    assert body_of(response) == onnx_bytes[-10:]
    size = len(onnx_bytes)
    assert response["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"


def test_open_range_returns_the_rest(api, onnx_bytes):
    response = api.get(FILE, HTTP_RANGE="bytes=100-")
    assert response.status_code == 206
    assert body_of(response) == onnx_bytes[100:]
    assert response["Content-Length"] == str(len(onnx_bytes) - 100)


def test_range_past_the_end_is_416(api, onnx_bytes):
    response = api.get(FILE, HTTP_RANGE=f"bytes={len(onnx_bytes)}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(onnx_bytes)}"
    assert "outside" in response.json()["detail"]


def test_several_ranges_get_the_whole_file(api, onnx_bytes):
    response = api.get(FILE, HTTP_RANGE="bytes=0-1,5-6")
    assert response.status_code == 200 and body_of(response) == onnx_bytes


def test_stale_if_range_gets_the_whole_file(api, onnx_bytes):
    response = api.get(FILE, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE='"something-else"')
    assert response.status_code == 200 and body_of(response) == onnx_bytes


def test_matching_if_none_match_is_304(api, onnx_bytes):
    etag = api.get(FILE)["ETag"]
    response = api.get(FILE, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and body_of(response) == b""


def test_missing_file_path_is_404(api, onnx_bytes):
    response = api.get("/api/v1/models/det/versions/1/files/nope.bin")
    assert response.status_code == 404 and "nope.bin" in response.json()["detail"]


def test_files_in_subfolders_download_by_path(api, onnx_bytes, tmp_path):
    archive = zip_of({"model.onnx": onnx_bytes, "cfg/labels.txt": b"cat\n"}, tmp_path / "b.zip")
    assert upload(api, "det", archive, version="2", primary_path="model.onnx").status_code == 201
    response = api.get("/api/v1/models/det/versions/2/files/cfg/labels.txt")
    assert body_of(response) == b"cat\n"
    assert response["Content-Type"].startswith("text/plain")
    listed = api.get("/api/v1/models/det/versions/2/files").json()
    assert sorted(f["path"] for f in listed) == ["cfg/labels.txt", "model.onnx"]


def test_zip_download_round_trips_every_file_byte_for_byte(api, onnx_bytes, tmp_path, settings):
    files = {
        "model.onnx": onnx_bytes,
        "cfg/labels.txt": b"cat\ndog\n",
        "weights/extra.bin": bytes(range(256)) * 40,
    }
    archive = zip_of(files, tmp_path / "bundle.zip")
    assert upload(api, "det", archive, version="2", primary_path="model.onnx").status_code == 201
    settings.MODELMGR_STREAM_CHUNK_BYTES = 1000  # many chunks per file
    response = api.get("/api/v1/models/det/versions/2/download")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert 'filename="det-2.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(body_of(response))) as zf:
        assert zf.testzip() is None
        assert {name: zf.read(name) for name in zf.namelist()} == files


def test_verify_reports_intact_files(api, onnx_bytes):
    response = api.post("/api/v1/models/det/versions/1/verify")
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "files": [{"path": "model.onnx", "ok": True, "detail": ""}],
    }


def test_verify_detects_a_corrupted_blob(api, onnx_bytes):
    sha = ModelVersion.objects.get().files.get().sha256
    content_store().local_path(sha).write_bytes(b"flipped bits" + onnx_bytes[12:])
    response = api.post("/api/v1/models/det/versions/1/verify")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    (check,) = body["files"]
    assert check["path"] == "model.onnx" and check["ok"] is False and sha in check["detail"]
    assert ModelVersion.objects.get().status == "error"
    assert AuditEvent.objects.filter(action="version.verify").exists()


def test_zip_download_of_a_version_with_a_missing_blob_is_409(api, onnx_bytes):
    sha = ModelVersion.objects.get().files.get().sha256
    content_store().local_path(sha).unlink()
    response = api.get("/api/v1/models/det/versions/1/download")
    assert response.status_code == 409 and "missing" in response.json()["detail"]
    assert api.get(FILE).status_code == 409


@pytest.mark.django_db(transaction=True)
async def test_asgi_downloads_stream_chunk_by_chunk_without_buffering(
    owner, model_files, tmp_path, settings
):
    from asgiref.sync import sync_to_async
    from django.db import connections
    from django.test import AsyncClient

    from tests.conftest import make_token

    settings.MODELMGR_STREAM_CHUNK_BYTES = 64
    token = await sync_to_async(make_token)(owner)
    client = AsyncClient()
    auth = {"Authorization": f"Bearer {token}"}
    path = model_files.onnx(tmp_path / "upload" / "model.onnx")
    with path.open("rb") as fh:
        created = await client.post(
            "/api/v1/models/det/versions", {"file": fh, "version": "1"}, headers=auth
        )
    assert created.status_code == 201, created.content
    data = path.read_bytes()

    async def collect(response) -> tuple[bytes, int]:
        assert response.is_async  # an async iterator: Django's ASGI handler will not list() it
        parts = [part async for part in response.streaming_content]
        return b"".join(parts), len(parts)

    whole, parts = await collect(await client.get(FILE, headers=auth))
    assert whole == data and parts > 1
    ranged = await client.get(FILE, headers={**auth, "Range": "bytes=10-99"})
    assert ranged.status_code == 206 and (await collect(ranged))[0] == data[10:100]
    zipped, _ = await collect(
        await client.get("/api/v1/models/det/versions/1/download", headers=auth)
    )
    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        assert zf.read("model.onnx") == data
    # The views ran in asgiref's sync thread; its (persistent) connection would keep
    # PostgreSQL from dropping the test database.
    await sync_to_async(connections.close_all)()


def test_model_files_get_content_types_from_our_table_not_the_systems(api, model_files, tmp_path):
    """Debian's MIME database calls `.pt` a SNES page table; a model file is opaque bytes."""
    folder = tmp_path / "policy"
    model_files.torchscript(folder / "policy.pt")
    (folder / "config.json").write_text("{}")
    assert upload(api, "walker", zip_of_folder(folder, tmp_path / "p.zip")).status_code == 201
    base = "/api/v1/models/walker/versions/1/files"
    assert api.get(f"{base}/policy.pt")["Content-Type"] == "application/octet-stream"
    assert api.get(f"{base}/config.json")["Content-Type"] == "application/json"


def test_the_migration_retypes_rows_stored_with_the_systems_guess(api, onnx_bytes):
    import importlib

    from django.apps import apps

    from modelmgr.models import ArtifactFile

    ArtifactFile.objects.update(content_type="application/vnd.snesdev-page-table")
    migration = importlib.import_module("modelmgr.migrations.0007_content_types")
    migration.retype(apps, None)
    assert set(ArtifactFile.objects.values_list("content_type", flat=True)) == {
        "application/octet-stream"
    }


def zip_of_folder(folder, dest):
    return zip_of({p.name: p.read_bytes() for p in folder.iterdir()}, dest)
