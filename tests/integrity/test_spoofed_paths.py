"""Stored paths that would display as another name are refused with 400 naming the
character: bidi overrides, zero-width and other format characters (Unicode Cf), line
and paragraph separators (Zl, Zp), and dots that are not U+002E."""

from __future__ import annotations

import pytest

from modelmgr.exceptions import BadPath
from modelmgr.ingest.paths import clean_relative_path
from modelmgr.models import RegisteredModel
from tests.api.helpers import staged_files, stored_blobs, zip_of
from tests.api.rawhttp import MULTIPART_CONTENT_TYPE, multipart_body

URL = "/api/v1/models/det/versions"

SPOOFS = [
    ("model\u202exnno.txt", "U+202E RIGHT-TO-LEFT OVERRIDE, a format character"),
    ("mo\u200bdel.onnx", "U+200B ZERO WIDTH SPACE, a format character"),
    ("\ufeffmodel.onnx", "U+FEFF ZERO WIDTH NO-BREAK SPACE, a format character"),
    ("model\u2028.onnx", "U+2028 LINE SEPARATOR, a line separator"),
    ("model\u2029.onnx", "U+2029 PARAGRAPH SEPARATOR, a paragraph separator"),
    ("model\u2024onnx", "U+2024 ONE DOT LEADER, which looks like a dot"),
    ("\u2025/model.onnx", "U+2025 TWO DOT LEADER, which looks like a dot"),
    ("model\uff0eonnx", "U+FF0E FULLWIDTH FULL STOP, which looks like a dot"),
    ("model\ufe52onnx", "U+FE52 SMALL FULL STOP, which looks like a dot"),
    ("model\u3002onnx", "U+3002 IDEOGRAPHIC FULL STOP, which looks like a dot"),
    ("model%E2%80%AE.onnx", "U+202E RIGHT-TO-LEFT OVERRIDE, a format character once"),
]


@pytest.mark.parametrize(("raw", "problem"), SPOOFS)
def test_spoofing_characters_in_a_path_are_refused(raw, problem):
    with pytest.raises(BadPath) as caught:
        clean_relative_path(raw)
    assert problem in caught.value.detail


@pytest.mark.parametrize("raw", ["modèle.onnx", "нейросеть.onnx", "模型/权重.bin", "l·l.txt"])
def test_ordinary_non_ascii_names_are_kept(raw):
    assert clean_relative_path(raw) == raw


@pytest.mark.django_db
@pytest.mark.parametrize(("raw", "problem"), SPOOFS[:3] + SPOOFS[5:6])
def test_an_upload_named_with_a_spoofing_character_is_400(api, model_files, tmp_path, raw, problem):
    data = model_files.onnx(tmp_path / "upload" / "model.onnx").read_bytes()
    body = multipart_body({"version": "1"}, filename=raw, data=data)
    response = api.post(URL, data=body, content_type=MULTIPART_CONTENT_TYPE)
    assert response.status_code == 400, response.content
    assert problem in response.json()["detail"]
    assert not RegisteredModel.objects.exists()
    assert stored_blobs() == [] and staged_files() == []


@pytest.mark.django_db
def test_a_zip_entry_with_a_bidi_override_is_400(api, model_files, tmp_path):
    data = model_files.onnx(tmp_path / "upload" / "model.onnx").read_bytes()
    archive = zip_of({"model.onnx": data, "readme\u202etxt.exe": b"x"}, tmp_path / "b.zip")
    with archive.open("rb") as fh:
        response = api.post(URL, {"file": fh, "version": "1", "primary_path": "model.onnx"})
    assert response.status_code == 400, response.content
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in response.json()["detail"]
    assert stored_blobs() == [] and staged_files() == []
