"""POST /api/v1/slots/{slot}/predict on the serving port: the web API's formats, a robot
changes only the host."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from tests.inference.serving.conftest import bearer, token

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 10


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_json_npy_and_safetensors_get_the_same_outputs_as_the_private_infer(worker_proc, owner):
    reference = httpx.post(f"{worker_proc.url}/infer/det", json={"inputs": {"x": X.tolist()}})
    expected = np.asarray(reference.json()["outputs"]["y"], dtype=np.float32)
    headers = bearer(token(owner))
    with httpx.Client(base_url=worker_proc.serve_url, headers=headers, timeout=30) as client:
        as_json = client.post("/api/v1/slots/det/predict", json={"inputs": {"x": X.tolist()}})
        assert as_json.status_code == 200, as_json.text
        body = as_json.json()
        assert body["model"] == "clf@1" and body["shapes"] == {"y": [2, 2]}
        np.testing.assert_allclose(body["outputs"]["y"], expected, rtol=1e-6)
        as_npy = client.post(
            "/api/v1/slots/det/predict",
            content=npy(X),
            headers={"content-type": "application/x-npy"},
        )
        np.testing.assert_allclose(as_npy.json()["outputs"]["y"], expected, rtol=1e-6)
        binary = client.post(
            "/api/v1/slots/det/predict",
            content=st_save({"x": X}),
            headers={
                "content-type": "application/x-safetensors",
                "accept": "application/x-safetensors",
            },
        )
        assert binary.status_code == 200
        assert binary.headers["content-type"] == "application/x-safetensors"
        assert binary.headers["x-model"] == "clf@1"
        np.testing.assert_allclose(st_load(binary.content)["y"], expected, rtol=1e-6)


def test_errors_are_json_details_with_the_web_apis_statuses(worker_proc, owner):
    headers = bearer(token(owner))
    with httpx.Client(base_url=worker_proc.serve_url, headers=headers, timeout=30) as client:
        shape = client.post("/api/v1/slots/det/predict", json={"inputs": {"x": [[1, 2, 3]]}})
        assert shape.status_code == 422
        assert shape.json()["detail"] == (
            "input 'x' expects shape [batch, 4] (float32), got [1, 3] (float32)"
        )
        missing = client.post("/api/v1/slots/nope/predict", json={"inputs": {"x": [[1] * 4]}})
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        media = client.post(
            "/api/v1/slots/det/predict", content=b"a,b", headers={"content-type": "text/csv"}
        )
        assert media.status_code == 415 and "text/csv" in media.json()["detail"]
        method = client.get("/api/v1/slots/det/predict")
        assert method.status_code == 405 and "POST" in method.json()["detail"]
        unknown = client.get("/api/v1/nothing")
        assert unknown.status_code == 404


def test_a_body_over_the_predict_limit_is_413_before_it_is_read(served_clf, owner):
    from tests.inference.serving.conftest import QUIET
    from tests.workerproc import start_worker

    headers = bearer(token(owner))
    big = np.zeros((100, 4), dtype=np.float32)
    with start_worker(env={**QUIET, "MODELMGR_PREDICT_MAX_BYTES": "1000"}) as worker_proc:
        worker_proc.wait_ready()
        with httpx.Client(base_url=worker_proc.serve_url, headers=headers, timeout=30) as client:
            v1 = client.post(
                "/api/v1/slots/det/predict",
                content=npy(big),
                headers={"content-type": "application/x-npy"},
            )
            assert v1.status_code == 413
            assert "MODELMGR_PREDICT_MAX_BYTES" in v1.json()["detail"]
            v2 = client.post(
                "/v2/models/det/infer",
                json={
                    "inputs": [
                        {"name": "x", "datatype": "FP32", "shape": [100, 4], "data": [0.5] * 400}
                    ]
                },
            )
            assert v2.status_code == 413 and "exceeds the 1000 byte limit" in v2.json()["error"]
