"""An ONNX file the worker's onnxruntime cannot load: a warning at upload (API and the
upload page's report), and a switch error that keeps onnxruntime's root cause."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from inference.entry import short_error
from modelmgr.ingest.onnx_support import installed_onnxruntime, support_for
from tests.deploy.live import live_worker, switch
from tests.inference.support import make_slot, onnx_version

URL = "/api/v1/models/future/versions"


def _onnx_with(model_files, tmp_path: Path, *, ir_version: int | None = None, opset=None):
    path = model_files.onnx(tmp_path / "built" / "model.onnx")
    model = onnx.load(str(path))
    if ir_version is not None:
        model.ir_version = ir_version
    if opset is not None:
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = opset
    out = tmp_path / "future" / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def _limits():
    version = installed_onnxruntime()
    assert version is not None
    support, _ = support_for(version)
    return version, support


@pytest.mark.django_db
def test_an_ir_version_beyond_the_runtime_is_a_warning_on_the_version(api, model_files, tmp_path):
    version, support = _limits()
    path = _onnx_with(model_files, tmp_path, ir_version=support.ir_version + 1)
    with path.open("rb") as fh:
        created = api.post(URL, {"file": fh, "version": "1", "task": "classifier"})
    assert created.status_code == 201, created.content
    warnings = created.json()["inspection"]["warnings"]
    assert len(warnings) == 1
    assert f"IR version {support.ir_version + 1}" in warnings[0]
    assert f"onnxruntime {version} loads IR version {support.ir_version} at most" in warnings[0]
    shown = api.get(URL + "/1").json()
    assert shown["inspection"]["warnings"] == warnings


@pytest.mark.django_db
def test_the_warning_shows_on_the_model_page(api, owner_client, model_files, tmp_path):
    _, support = _limits()
    path = _onnx_with(model_files, tmp_path, ir_version=support.ir_version + 1)
    with path.open("rb") as fh:
        assert api.post(URL, {"file": fh, "version": "1"}).status_code == 201
    page = owner_client.get("/models/future").content.decode()
    assert (
        '<div class="msg err inspection-warning" role="status"><strong>Warning:</strong> '
        f"model.onnx has ONNX IR version {support.ir_version + 1}"
    ) in page


@pytest.mark.django_db
def test_an_opset_beyond_the_runtime_is_a_warning_in_the_upload_report(
    owner_client, model_files, tmp_path
):
    _, support = _limits()
    path = _onnx_with(model_files, tmp_path, opset=support.opset + 1)
    with path.open("rb") as fh:
        html = owner_client.post(
            "/models/upload",
            {"file": fh, "name": "future", "version": "1", "task": "classifier"},
            HTTP_HX_REQUEST="true",
        ).content.decode()
    assert "Stored future@1" in html, html[:2000]
    assert (
        '<div class="msg err inspection-warning" role="status"><strong>Warning:</strong> '
        f"model.onnx uses ai.onnx opset {support.opset + 1}; the worker"
    ) in html


@pytest.mark.django_db
def test_a_model_within_the_runtime_has_no_warnings(api, model_files, tmp_path):
    path = model_files.onnx(tmp_path / "ok" / "model.onnx")
    with path.open("rb") as fh:
        created = api.post(URL, {"file": fh, "version": "1", "task": "classifier"})
    assert created.status_code == 201
    assert "warnings" not in created.json()["inspection"]


def test_short_error_keeps_the_root_cause_at_the_end_of_a_long_message():
    message = (
        "[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/graph/model.cc:256 "
        + "onnxruntime::Model::Model("
        + "x" * 600
        + ")\n"
        + "Unsupported model IR version: 14, max supported IR version: 13"
    )
    short = short_error(RuntimeError(message))
    assert short.startswith("RuntimeError: [ONNXRuntimeError] : 1 : FAIL")
    assert short.endswith("Unsupported model IR version: 14, max supported IR version: 13")
    assert len(short) < 600


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_failed_switch_names_onnxruntimes_root_cause(
    api, settings, owner, model_files, tmp_path
):
    _, support = _limits()
    v1 = onnx_version(owner, model_files, tmp_path, name="clf", version="1", seed=0)
    make_slot("clf", v1, task="classifier")
    path = _onnx_with(model_files, tmp_path, ir_version=support.ir_version + 1)
    with path.open("rb") as fh:
        assert (
            api.post("/api/v1/models/clf/versions", {"file": fh, "version": "2"}).status_code == 201
        )
    with live_worker(settings):
        refused = switch(api, {"clf": "clf@2"})
    assert refused.status_code == 409, refused.content
    assert (
        f"Unsupported model IR version: {support.ir_version + 1}, "
        f"max supported IR version: {support.ir_version}"
    ) in refused.json()["detail"]
