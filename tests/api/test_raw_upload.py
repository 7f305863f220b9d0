"""``PUT /api/v1/models/{name}/versions/{version}/files/{path}``: the body is the file.

Through the real web process the body goes straight into staging, hashed as it arrives
(modelmgr.ingest.raw_body, modelmgr.web_server); through Django's test client the route
stages the body itself. Both must give the same versions, and refuse the same way while
keeping nothing: no staged file, no blob, no row.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import struct
import zipfile

import httpx
import pytest
from django.test import Client

from modelmgr.models import ModelVersion, RegisteredModel
from tests.api.helpers import staged_files, stored_blobs
from tests.api.test_large_uploads import _PeakRss, _safetensors
from tests.conftest import make_token
from tests.inference.support import eventually
from tests.webproc import WebProcess
from tests.workerproc import worker_environment

PAYLOAD_MB = 96
RSS_GROWTH_LIMIT_MB = 40


def blobs() -> list[str]:
    return [path.name for path in stored_blobs()]  # named by their sha256


def digest_header(sha256: str) -> str:
    return "sha-256=:" + base64.b64encode(bytes.fromhex(sha256)).decode() + ":"


def safetensors_bytes(size: int = 64) -> bytes:
    header = json.dumps({"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}})
    header = header.encode() + b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + bytes(i % 251 for i in range(size))


# -- through the real web process --------------------------------------------------------


def test_a_large_raw_upload_is_staged_as_it_arrives_and_committed_intact(web, owner, tmp_path):
    path, sha256 = _safetensors(tmp_path, PAYLOAD_MB)
    url = f"{web.url}/api/v1/models/big-policy/versions/1/files/weights/big.safetensors"
    headers = {
        "Authorization": f"Bearer {make_token(owner)}",
        "Content-Digest": digest_header(sha256),
    }
    with httpx.Client(timeout=120) as client, _PeakRss(web.proc.pid) as rss:
        with path.open("rb") as fh:
            response = client.put(url, params={"task": "policy"}, headers=headers, content=fh)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["ref"] == "big-policy@1" and body["framework"] == "safetensors"
    assert [(f["path"], f["sha256"], f["size"]) for f in body["files"]] == [
        ("weights/big.safetensors", sha256, path.stat().st_size)
    ]
    assert rss.growth_mb < RSS_GROWTH_LIMIT_MB, f"the web process grew {rss.growth_mb:.0f} MB"
    assert blobs() == [sha256]
    assert staged_files() == []  # committed by a rename: nothing left behind
    model = RegisteredModel.objects.get(name="big-policy")
    assert model.task == "policy" and model.versions.get().files.get().sha256 == sha256
    # And it downloads as it was sent.
    got = httpx.get(f"{url}", headers={"Authorization": headers["Authorization"]}, timeout=120)
    assert hashlib.sha256(got.content).hexdigest() == sha256


def test_a_body_that_is_not_what_the_digest_says_is_refused_and_nothing_is_kept(web, owner):
    data = safetensors_bytes(300_000)
    token = make_token(owner)
    wrong = hashlib.sha256(b"something else").hexdigest()
    response = httpx.put(
        f"{web.url}/api/v1/models/clf/versions/1/files/w.safetensors",
        params={"sha256": wrong},
        headers={"Authorization": f"Bearer {token}"},
        content=data,
        timeout=30,
    )
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert hashlib.sha256(data).hexdigest() in detail and wrong in detail
    assert "nothing was stored" in detail
    assert blobs() == [] and staged_files() == []
    assert not RegisteredModel.objects.filter(name="clf").exists()


def test_a_refused_request_leaves_no_staged_file(web, owner):
    data = safetensors_bytes(300_000)
    url = f"{web.url}/api/v1/models/clf/versions/1/files/w.safetensors"
    anonymous = httpx.put(url, content=data, timeout=30)
    assert anonymous.status_code == 401, anonymous.text
    token = make_token(owner)
    headers = {"Authorization": f"Bearer {token}"}
    bad_path = httpx.put(
        f"{web.url}/api/v1/models/clf/versions/1/files/a%2F..%2F..%2Fx.onnx",
        headers=headers,
        content=data,
        timeout=30,
    )
    assert bad_path.status_code == 400 and "x.onnx" in bad_path.json()["detail"]
    first = httpx.put(url, headers=headers, content=data, timeout=30)
    assert first.status_code == 201, first.text
    again = httpx.put(url, headers=headers, content=safetensors_bytes(200_000), timeout=30)
    assert again.status_code == 409 and "already has version 1" in again.json()["detail"]
    eventually(lambda: staged_files() == [], what="no staged file left")
    assert blobs() == [hashlib.sha256(data).hexdigest()]
    assert ModelVersion.objects.count() == 1


def test_an_oversize_raw_body_is_refused_before_it_is_sent(transactional_db, owner):
    env = {**worker_environment(), "MODELMGR_MAX_UPLOAD_BYTES": "100000"}
    web = WebProcess(env=env).start()
    try:
        token = make_token(owner)
        # 100,001 bytes: within the multipart allowance, but a raw body is the file itself.
        response = httpx.put(
            f"{web.url}/api/v1/models/clf/versions/1/files/w.safetensors",
            headers={"Authorization": f"Bearer {token}"},
            content=bytes(100_001),
            timeout=30,
        )
        assert response.status_code == 413, response.text
        assert "100000 byte upload limit" in response.json()["detail"]
        assert staged_files() == [] and blobs() == []
    finally:
        web.stop()


def test_a_client_that_hangs_up_mid_body_leaves_nothing(web, owner):
    token = make_token(owner)
    head = (
        "PUT /api/v1/models/clf/versions/1/files/w.safetensors HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{web.port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Length: 50000000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.sendall(head + bytes(5_000_000))
        eventually(lambda: len(staged_files()) == 1, what="the body being staged")
    eventually(lambda: staged_files() == [], what="the half-sent body removed")
    assert blobs() == [] and ModelVersion.objects.count() == 0
    assert httpx.get(f"{web.url}/api/v1/health", timeout=10).status_code == 200


def test_a_raw_zip_is_unpacked_into_the_version(web, owner):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.safetensors", safetensors_bytes(1000))
        archive.writestr("README.md", "hello")
    response = httpx.put(
        f"{web.url}/api/v1/models/bundle/versions/2/files/pkg/bundle.zip",
        headers={"Authorization": f"Bearer {make_token(owner)}"},
        content=buffer.getvalue(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert sorted(f["path"] for f in response.json()["files"]) == [
        "pkg/README.md",
        "pkg/model.safetensors",
    ]
    assert staged_files() == []


# -- through Django's test client (the route stages the body itself) ---------------------


@pytest.mark.django_db
def test_the_route_stages_the_body_itself_under_another_server(owner):
    data = safetensors_bytes(5000)
    sha256 = hashlib.sha256(data).hexdigest()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    url = "/api/v1/models/clf/versions/3/files/w.safetensors"
    mismatch = client.put(
        url,
        data,
        content_type="application/octet-stream",
        HTTP_CONTENT_DIGEST=digest_header("0" * 64),
    )
    assert mismatch.status_code == 400 and sha256 in mismatch.json()["detail"]
    malformed = client.put(
        url, data, content_type="application/octet-stream", HTTP_CONTENT_DIGEST="sha-256=abc"
    )
    assert malformed.status_code == 422 and "Content-Digest" in malformed.json()["detail"]
    bad_hex = client.put(url + "?sha256=xyz", data, content_type="application/octet-stream")
    assert bad_hex.status_code == 422 and "sha256" in bad_hex.json()["detail"]
    empty = client.put(url, b"", content_type="application/octet-stream")
    assert empty.status_code in (400, 422) and "empty" in empty.json()["detail"]
    assert blobs() == [] and staged_files() == []
    created = client.put(
        url + "?task=classifier&val_accuracy=0.93&tags=a,b",
        data,
        content_type="application/octet-stream",
        HTTP_CONTENT_DIGEST=digest_header(sha256),
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["ref"] == "clf@3" and body["val_accuracy"] == 0.93
    assert body["files"][0]["sha256"] == sha256 and blobs() == [sha256]
    assert sorted(RegisteredModel.objects.get(name="clf").tags.values_list("name", flat=True)) == [
        "a",
        "b",
    ]
    read_only = Client(
        HTTP_AUTHORIZATION=f"Bearer {make_token(owner, scopes=['read'], name='reader')}"
    )
    refused = read_only.put(
        url.replace("/3/", "/4/"), data, content_type="application/octet-stream"
    )
    assert refused.status_code == 403 and "write" in refused.json()["detail"]
