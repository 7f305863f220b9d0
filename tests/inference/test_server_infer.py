"""The real worker process serving /infer, probes, status and model control."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from tests.inference.support import (
    GATE_RUNTIMES,
    gate_version,
    make_slot,
    onnx_version,
    waiting_loads,
)
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
QUIET = {
    "MODELMGR_WORKER_RUNTIMES": ",".join(GATE_RUNTIMES),
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture
def served_clf(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    make_slot("det", version)
    return version


def test_json_npy_and_safetensors_requests_get_the_same_outputs(served_clf):
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        as_json = client.post("/infer/det", json={"inputs": {"x": X.tolist()}})
        assert as_json.status_code == 200, as_json.text
        body = as_json.json()
        assert body["model"] == "clf@1" and body["version_id"] == served_clf.pk
        assert body["shapes"] == {"y": [2, 2]} and body["latency_ms"] > 0
        expected = np.asarray(body["outputs"]["y"], dtype=np.float32)
        as_npy = client.post(
            "/infer/det", content=npy(X), headers={"content-type": "application/x-npy"}
        )
        np.testing.assert_allclose(as_npy.json()["outputs"]["y"], expected, rtol=1e-6)
        binary = client.post(
            "/infer/det",
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


def test_inputs_that_break_the_signature_get_422_naming_them(served_clf):
    cases = [
        (
            {"json": {"inputs": {"x": [[1, 2, 3]]}}},
            "input 'x' expects shape [batch, 4] (float32), got [1, 3] (float32)",
        ),
        (
            {"json": {"inputs": {"x": [1, 2, 3, 4]}}},
            "input 'x' expects shape [batch, 4] (float32), got [4] (float32)",
        ),
        (
            {"json": {"inputs": {"x": [[1, 2], [3]]}}},
            "input 'x' is not a rectangular array of numbers",
        ),
        (
            {"json": {"inputs": {"features": [[1, 2, 3, 4]]}}},
            "missing input 'x'; unknown input 'features' (the model takes x)",
        ),
        ({"json": {"x": [[1, 2, 3, 4]]}}, 'the body must be {"inputs": {name: nested lists}}'),
        (
            {
                "content": npy(X.astype(np.float64)),
                "headers": {"content-type": "application/x-npy"},
            },
            "input 'x' expects dtype float32, got float64",
        ),
        (
            {"content": b"not numpy", "headers": {"content-type": "application/x-npy"}},
            "the body is not a .npy array",
        ),
        (
            {
                "content": st_save({"x": X[:, :3].copy()}),
                "headers": {"content-type": "application/x-safetensors"},
            },
            "input 'x' expects shape [batch, 4] (float32), got [2, 3] (float32)",
        ),
    ]
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        for request, detail in cases:
            response = client.post("/infer/det", **request)
            assert response.status_code == 422, (request, response.text)
            assert response.json()["detail"].startswith(detail), response.json()
        image = client.post("/infer/det", content=b"\x89PNG", headers={"content-type": "image/png"})
        assert image.status_code == 415 and "image/png is not accepted" in image.json()["detail"]
        usage = client.get("/status").json()["models"][0]
        assert usage["in_flight"] == 0


def test_unknown_slot_is_404(served_clf):
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        response = client.post("/infer/nope", json={"inputs": {"x": X.tolist()}})
        assert response.status_code == 404
        assert response.json() == {"detail": "slot nope is not served"}
        assert client.get("/nowhere").status_code == 404
        assert client.get("/infer/det").status_code == 405


def test_requests_get_503_while_slots_restore_never_a_hang(owner, tmp_path):
    gate = tmp_path / "gate"
    make_slot("slow", gate_version(owner, name="slow", gate=gate))
    with start_worker(env=QUIET) as worker, worker.client(timeout=10) as client:
        assert client.get("/live").json() == {"status": "live"}
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
        assert ready.json()["detail"].startswith("restoring slots")
        busy = client.post("/infer/slow", json={"inputs": {"x": X.tolist()}})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert client.get("/status").json()["ready"] is False
        assert waiting_loads(gate) == 1
        gate.touch()
        worker.wait_ready()
        answer = client.post("/infer/slow", json={"inputs": {"x": X.tolist()}})
        assert answer.status_code == 200
        np.testing.assert_allclose(answer.json()["outputs"]["y"], X * 2)


def test_status_describes_device_memory_slots_and_models(served_clf):
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        status = client.get("/status").json()
        assert status["ready"] is True and status["pid"] == worker.pid
        assert status["device"] in ("cpu", "cuda:0") and status["device_name"]
        assert status["memory"]["kind"] == ("gpu" if status["device"] != "cpu" else "ram")
        assert status["memory"]["free_bytes"] <= status["memory"]["budget_bytes"]
        assert status["slots"]["det"]["ref"] == "clf@1" and status["slots"]["det"]["since"]
        (model,) = status["models"]
        assert model["ref"] == "clf@1" and model["slots"] == ["det"]
        assert model["runtime"] == "onnxruntime" and model["provider"].endswith("ExecutionProvider")
        assert model["pinned"] is False and model["in_flight"] == 0 and status["errors"] == {}


def test_load_pin_and_unload_control_models_outside_slots(served_clf, owner, model_files, tmp_path):
    extra = onnx_version(owner, model_files, tmp_path, name="extra", seed=4)
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        loaded = client.post("/load", json={"version_id": extra.pk, "pin": True})
        assert loaded.status_code == 200 and loaded.json()["pinned"] is True
        busy = client.post("/unload", json={"version_id": served_clf.pk})
        assert busy.status_code == 409 and "served by a slot" in busy.json()["detail"]
        assert client.post("/unload", json={"version_id": extra.pk}).status_code == 200
        assert [m["ref"] for m in client.get("/status").json()["models"]] == ["clf@1"]
        missing = client.post("/load", json={"version_id": 987654})
        assert missing.status_code == 404 and missing.json()["detail"] == (
            "version 987654 does not exist"
        )
        assert client.post("/load", json={"version_id": "x"}).status_code == 400


def test_worker_answers_on_a_unix_socket(served_clf, tmp_path):
    path = tmp_path / "worker.sock"
    with start_worker(env={**QUIET, "MODELMGR_WORKER_SOCKET": str(path)}) as worker:
        worker.wait_ready()
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://worker") as client:
            response = client.post("/infer/det", json={"inputs": {"x": X.tolist()}})
        assert response.status_code == 200 and response.json()["model"] == "clf@1"
