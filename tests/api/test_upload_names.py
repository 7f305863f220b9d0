"""Upload file names are checked as the client sent them (README "Safety of ingest").

Django's own multipart parsing would quietly cut ``../x.onnx`` down to ``x.onnx`` and
drop a NUL from ``a\\x00b.onnx``; ingest sees the real name and refuses it with 400. The
bodies are built by hand: ordinary clients send only a file's base name.
"""

from __future__ import annotations

import pytest

from modelmgr.models import RegisteredModel
from tests.api.helpers import staged_files, stored_blobs
from tests.api.rawhttp import MULTIPART_CONTENT_TYPE, multipart_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/det/versions"


@pytest.fixture
def onnx_bytes(model_files, tmp_path) -> bytes:
    return model_files.onnx(tmp_path / "upload" / "model.onnx").read_bytes()


def _upload(api, filename: bytes | str, data: bytes, **fields: str):
    body = multipart_body({"version": "1", **fields}, filename=filename, data=data)
    return api.post(URL, data=body, content_type=MULTIPART_CONTENT_TYPE)


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        ("..%2f..%2fx.onnx", "'..' segment once percent-decoded"),
        (b"a\x00b.onnx", "NUL or control character"),
        ("../x.onnx", "'..' segment"),
        ("..", "'..' segment"),
        ("/etc/x.onnx", "absolute"),
        ("dir\\x.onnx", "backslash"),
    ],
    ids=["percent-encoded-dotdot", "nul", "dotdot", "bare-dotdot", "absolute", "backslash"],
)
def test_a_bad_upload_name_is_400_and_stores_nothing(api, onnx_bytes, filename, problem):
    response = _upload(api, filename, onnx_bytes)
    assert response.status_code == 400, response.content
    assert problem in response.json()["detail"]
    assert not RegisteredModel.objects.exists()
    assert stored_blobs() == [] and staged_files() == []


def test_a_bad_upload_name_is_refused_even_when_path_replaces_it(api, onnx_bytes):
    response = _upload(api, "../x.onnx", onnx_bytes, path="model.onnx")
    assert response.status_code == 400, response.content
    assert "'..' segment" in response.json()["detail"]
    assert stored_blobs() == [] and staged_files() == []


@pytest.mark.parametrize(
    ("filename", "stored_as"),
    [("model.onnx", "model.onnx"), ("nets/model.onnx", "nets/model.onnx")],
)
def test_a_clean_upload_name_is_the_file_path_as_sent(api, onnx_bytes, filename, stored_as):
    response = _upload(api, filename, onnx_bytes)
    assert response.status_code == 201, response.content
    assert [f["path"] for f in response.json()["files"]] == [stored_as]
    assert staged_files() == []
