"""Data drift in a real worker process: reference, unshifted ok, shifted drift, /metrics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.inference.support import GATE_RUNTIMES, make_slot, onnx_version
from tests.inference.test_server_metrics import scrape, switch, value
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
DRIFT_ENV = {
    "MODELMGR_WORKER_RUNTIMES": ",".join(GATE_RUNTIMES),
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
    "MODELMGR_DRIFT_REFERENCE": "300",
}


def send(client, slot: str, rng, *, mean: float, count: int) -> None:
    for _ in range(count):
        x = rng.normal(mean, 1.0, size=(1, 4)).round(5).tolist()
        response = client.post(f"/infer/{slot}", json={"inputs": {"x": x}})
        assert response.status_code == 200, response.text


def drift_after(client, slot: str, requests: int) -> dict:
    """The slot's report once the drift thread has summarised ``requests`` requests
    (the loop's limit guards against a hang; it is not a timing assertion)."""
    for _ in range(600):
        report = client.get(f"/drift/{slot}").json()
        served = [v for v in report["versions"] if v["version_id"] == report["version_id"]]
        if served and served[0]["requests"] >= requests:
            return report
        time.sleep(0.05)
    raise AssertionError(f"the drift thread never summarised {requests} requests: {report}")


def status_after(client, slot: str, expected: str) -> dict:
    """The slot's drift in the worker's /status once it reads ``expected``: the drift thread
    re-evaluates it at most EVALUATE_EVERY_S after the requests it summarised, so a read
    right after /drift/{slot} (evaluated on demand) may still see the previous one."""
    for _ in range(200):
        status = client.get("/status").json()["data_drift"].get(slot)
        if status and status["status"] == expected:
            return status
        time.sleep(0.05)
    raise AssertionError(f"/status never said {expected} for {slot}: {status}")


def test_shifted_inputs_drift_and_unshifted_do_not(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    make_slot("det", version)
    rng = np.random.default_rng(7)
    with start_worker(env=DRIFT_ENV) as worker, worker.client() as client:
        worker.wait_ready()
        assert client.get("/drift/det").json()["status"] == "no data"

        send(client, "det", rng, mean=0.0, count=150)
        learning = drift_after(client, "det", 150)
        assert learning["status"] == "learning"
        assert learning["versions"][0]["reference"]["requests"] == 150

        send(client, "det", rng, mean=0.0, count=150 + 300)
        steady = drift_after(client, "det", 600)
        assert steady["version_id"] == version.pk
        assert steady["status"] == "ok", steady["moved"]
        assert steady["moved"] == []
        features = {f["feature"]: f for f in steady["versions"][0]["features"]}
        assert set(features) == {"x[0]", "x[1]", "x[2]", "x[3]", "y[0]", "y[1]"}
        assert features["x[0]"]["io"] == "input"
        assert all(f["ks_pvalue"] >= 0.01 for f in features.values())

        send(client, "det", rng, mean=1.5, count=300)
        shifted = drift_after(client, "det", 900)
        assert shifted["status"] == "drift"
        moved = {f["feature"]: f for f in shifted["versions"][0]["features"]}
        for name in ("x[0]", "x[1]", "x[2]", "x[3]"):
            assert name in shifted["moved"]
            assert moved[name]["status"] == "drift"
            assert moved[name]["psi"] >= 0.25 and moved[name]["ks_pvalue"] < 0.01
        top = shifted["versions"][0]["features"][0]
        # The moved features come with their reference and current histograms.
        assert len(top["histogram"]["reference"]) == len(top["histogram"]["edges"]) + 1
        assert sum(top["histogram"]["current"]) == pytest.approx(1.0, abs=1e-3)

        # The worker's status (what /events relays to browsers) and /metrics say it too.
        status = status_after(client, "det", "drift")
        assert status == {"version_id": version.pk, "status": "drift", "moved": status["moved"]}
        assert "x[0]" in status["moved"] or "y[0]" in status["moved"]
        samples = scrape(client)
        labels = {"slot": "det", "version": str(version.pk)}
        assert value(samples, "modelmgr_drift_status", **labels) == 2
        assert value(samples, "modelmgr_drift_reference_complete", **labels) == 1
        assert value(samples, "modelmgr_drift_psi", **labels, io="input", feature="x[0]") >= 0.25


def test_a_switch_starts_a_new_reference_and_reset_forgets(owner, model_files, tmp_path):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("det", v1)
    rng = np.random.default_rng(3)
    env = {**DRIFT_ENV, "MODELMGR_DRIFT_REFERENCE": "40"}
    with start_worker(env=env) as worker, worker.client() as client:
        worker.wait_ready()
        send(client, "det", rng, mean=0.0, count=80)
        assert drift_after(client, "det", 80)["status"] == "ok"
        assert switch(client, {"det": v2.pk}, "s1")["ok"] is True
        send(client, "det", rng, mean=3.0, count=10)
        report = drift_after(client, "det", 10)
        # v2 learns its own reference from its own first requests; v1's is kept beside.
        assert report["version_id"] == v2.pk
        assert [v["version_id"] for v in report["versions"]] == [v2.pk, v1.pk]
        assert report["status"] == "learning"

        reset = client.post("/drift/det/reset", json={"reference_requests": 5})
        assert reset.status_code == 200, reset.text
        assert reset.json()["versions"] == [] and reset.json()["reference_requests"] == 5
        send(client, "det", rng, mean=0.0, count=5)
        assert drift_after(client, "det", 5)["versions"][0]["reference"]["complete"] is True


def test_uploaded_reference_sample_and_bad_inputs(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    make_slot("det", version)
    rng = np.random.default_rng(11)
    with start_worker(env=DRIFT_ENV) as worker, worker.client() as client:
        worker.wait_ready()
        sample = rng.normal(0.0, 1.0, size=(400, 4)).round(5).tolist()
        uploaded = client.post("/drift/det/reference", json={"inputs": {"x": sample}})
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["rows"] == 400
        assert uploaded.json()["tracker"]["reference"]["source"] == "sample"
        # No reference window to wait for: the next requests are compared at once.
        send(client, "det", rng, mean=2.0, count=60)
        report = drift_after(client, "det", 60)
        assert report["status"] == "drift"
        assert "x[0]" in report["moved"]

        for body, status, words in (
            ({"inputs": {"x": sample[:5]}}, 422, "at least 20 rows"),
            ({"inputs": {"nope": sample}}, 422, "x"),
            ({"inputs": [1, 2]}, 422, "inputs"),
            ({"sample": {}}, 422, "inputs"),
        ):
            response = client.post("/drift/det/reference", json=body)
            assert response.status_code == status, response.text
            assert words in response.json()["detail"]
        broken = client.post("/drift/det/reference", content=b"{not json")
        assert broken.status_code == 400 and "JSON" in broken.json()["detail"]
        ghost = client.post("/drift/ghost/reference", json={"inputs": {"x": sample}})
        assert ghost.status_code == 404 and "ghost" in ghost.json()["detail"]
        bad_reset = client.post("/drift/det/reset", json={"reference_requests": 0})
        assert bad_reset.status_code == 422 and "reference_requests" in bad_reset.json()["detail"]
        assert client.get("/drift/det/nothing").status_code == 404
        # The bad calls left the uploaded reference as it was.
        assert client.get("/drift/det").json()["status"] == "drift"
