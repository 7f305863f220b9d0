"""/api/v1/slots/{slot}/predict through a real worker: JSON, .npy and safetensors bodies,
the worker's errors passed through with their status."""

from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from tests.deploy.live import live_worker, predict
from tests.inference.support import make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clf_slot(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    make_slot("clf", version, task="classifier")
    make_slot("empty", None)
    return version


def raw(api, body: bytes, content_type: str, **extra):
    return api.generic(
        "POST", "/api/v1/slots/clf/predict", body, content_type=content_type, **extra
    )


def test_json_prediction_names_the_model_and_its_latency(api, settings, clf_slot):
    with live_worker(settings):
        response = predict(api, "clf", {"x": [[1, 2, 3, 4], [5, 6, 7, 8]]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "clf@1" and body["version_id"] == clf_slot.pk
    assert body["latency_ms"] >= 0
    assert np.asarray(body["outputs"]["y"]).shape == (2, 2)


def test_read_only_token_gets_a_prediction(client, read_only_token, settings, clf_slot):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {read_only_token}"
    with live_worker(settings):
        assert predict(client, "clf").status_code == 200


def test_npy_body_is_passed_through(api, settings, clf_slot):
    buffer = io.BytesIO()
    np.save(buffer, np.ones((3, 4), dtype=np.float32))
    with live_worker(settings):
        response = raw(api, buffer.getvalue(), "application/x-npy")
    assert response.status_code == 200, response.content
    assert np.asarray(response.json()["outputs"]["y"]).shape == (3, 2)


def test_safetensors_in_and_out(api, settings, clf_slot):
    body = safetensors_save({"x": np.ones((1, 4), dtype=np.float32)})
    with live_worker(settings):
        response = raw(
            api, body, "application/x-safetensors", HTTP_ACCEPT="application/x-safetensors"
        )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-safetensors"
    assert response["X-Model"] == "clf@1"
    assert safetensors_load(response.content)["y"].shape == (1, 2)


def test_bad_inputs_are_the_workers_422_naming_the_input(api, settings, clf_slot):
    with live_worker(settings):
        response = predict(api, "clf", {"x": [[1, 2, 3]]})
    assert response.status_code == 422
    assert "input 'x' expects shape [batch, 4]" in response.json()["detail"]


def test_slot_that_serves_nothing_is_the_workers_404(api, settings, clf_slot):
    with live_worker(settings):
        response = predict(api, "empty")
    assert response.status_code == 404
    assert "empty" in response.json()["detail"]


def test_json_labelled_as_plain_text_works_like_curl_d(api, settings, clf_slot):
    body = json.dumps({"inputs": {"x": [[1, 2, 3, 4]]}}).encode()
    with live_worker(settings):
        assert raw(api, body, "text/plain").status_code == 200


def test_predictions_and_errors_show_up_in_the_usage_statistics(api, settings, clf_slot):
    """Predict through the API, the worker records and flushes (every 0.2 s here), and
    /api/v1/stats counts exactly those requests for the slot and version."""
    with live_worker(settings):
        for _ in range(5):
            assert predict(api, "clf").status_code == 200
        assert predict(api, "clf", {"x": [[1, 2, 3]]}).status_code == 422  # wrong shape
        deadline = time.monotonic() + 30
        while True:
            totals = api.get("/api/v1/stats?slot=clf&since=1h").json()["totals"]
            if totals["count"] >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    # The refused request (a client's wrong shape) is counted apart from model errors:
    # the model did not fail, and its error rate must not say it did.
    assert (totals["count"], totals["errors"], totals["refused"]) == (6, 0, 1), totals
    assert totals["error_rate"] == 0.0
    assert 0 <= totals["min_ms"] <= totals["p50_ms"] <= totals["max_ms"]
    assert totals["last_used"] is not None
    groups = api.get("/api/v1/stats?version=clf@1").json()["groups"]
    assert [(g["slot"], g["ref"], g["count"], g["errors"], g["refused"]) for g in groups] == [
        ("clf", "clf@1", 6, 0, 1)
    ]
    api.force_login(clf_slot.model.owner)
    # The version's usage section: the all-time totals the worker's flush kept.
    usage = re.sub(r">\s+<", "><", api.get("/models/clf/versions/1/usage").content.decode())
    assert "Refused</th>" in usage
    cells = "".join(f'<td class="num">{n}</td>' for n in (6, 0, 1))  # requests, errors, refused
    assert f"<strong>clf</strong></td>{cells}" in usage


def test_non_finite_json_inputs_are_422_naming_the_input(api, settings, clf_slot):
    bodies = [
        b'{"inputs": {"x": [[1e400, 2, 3, 4]]}}',  # parses as infinity
        b'{"inputs": {"x": [[NaN, 2, 3, 4]]}}',
        b'{"inputs": {"x": [[-Infinity, 2, 3, 4]]}}',
        b'{"inputs": {"x": [[1e39, 2, 3, 4]]}}',  # finite, but beyond float32
    ]
    with live_worker(settings):
        for body in bodies:
            response = raw(api, body, "application/json")
            assert response.status_code == 422, (body, response.content)
            assert "input 'x' has values that are not finite float32" in response.json()["detail"]


def test_non_finite_outputs_are_strings_in_valid_json(api, settings, clf_slot):
    # A NaN input (binary bodies may carry one) makes the model answer NaN.
    buffer = io.BytesIO()
    np.save(buffer, np.array([[np.nan, 1, 2, 3], [1, 2, 3, 4]], dtype=np.float32))
    with live_worker(settings):
        response = raw(api, buffer.getvalue(), "application/x-npy")
    assert response.status_code == 200, response.content

    def refuse(token):
        raise AssertionError(f"bare {token} in the body: not JSON")

    body = json.loads(response.content, parse_constant=refuse)
    first, second = body["outputs"]["y"]
    assert set(first) <= {"NaN", "Infinity", "-Infinity"}, first
    assert all(isinstance(value, float) for value in second), second
