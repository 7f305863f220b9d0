"""GET /metrics of a real worker process: requests, latency, switches, models, memory."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.inference.support import GATE_RUNTIMES, make_slot, onnx_version
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
X = [[0.1, 0.2, 0.3, 0.4]]
QUIET = {
    "MODELMGR_WORKER_RUNTIMES": ",".join(GATE_RUNTIMES),
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
}


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def switch(client, slots: dict, switch_id: str) -> dict:
    body = {"switch_id": switch_id, "slots": slots}
    with client.stream("POST", "/switch", json=body) as r:
        events = [json.loads(line) for line in r.iter_lines() if line]
    return events[-1]


def test_metrics_count_requests_by_outcome_and_switches(owner, model_files, tmp_path):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("det", v1)
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        restored = scrape(client)
        # The restore loaded v1 through one reconcile switch.
        assert value(restored, "modelmgr_worker_switches_total", source="reconcile", outcome="ok")
        for _ in range(3):
            assert client.post("/infer/det", json={"inputs": {"x": X}}).status_code == 200
        assert client.post("/infer/det", json={"inputs": {"nope": X}}).status_code == 422
        assert client.post("/infer/ghost", json={"inputs": {"x": X}}).status_code == 404
        assert switch(client, {"det": v2.pk}, "s1")["ok"] is True
        assert client.post("/infer/det", json={"inputs": {"x": X}}).status_code == 200
        assert switch(client, {"det": 999_999}, "s2")["ok"] is False

        samples = scrape(client)
        requests = "modelmgr_worker_requests_total"
        assert value(samples, requests, slot="det", version=str(v1.pk), outcome="ok") == 3
        assert value(samples, requests, slot="det", version=str(v1.pk), outcome="refused") == 1
        assert value(samples, requests, slot="det", version=str(v2.pk), outcome="ok") == 1
        assert value(samples, requests, slot="_unknown", version="", outcome="refused") == 1
        assert not any(dict(labels).get("slot") == "ghost" for _, labels in samples)
        # Latency: every answered request of the slot, in buckets from 100 us.
        assert value(samples, "modelmgr_worker_request_duration_seconds_count", slot="det") == 5
        assert (
            value(samples, "modelmgr_worker_request_duration_seconds_bucket", slot="det", le="+Inf")
            == 5
        )
        assert (
            "modelmgr_worker_request_duration_seconds_bucket",
            (("le", "0.0001"), ("slot", "det")),
        ) in samples
        switches = "modelmgr_worker_switches_total"
        assert value(samples, switches, source="switch", outcome="ok") == 1
        assert value(samples, switches, source="switch", outcome="failed") == 1
        assert value(samples, "modelmgr_worker_switch_duration_seconds_count", source="switch") == 2
        swaps = value(samples, "modelmgr_worker_swap_duration_seconds_count")
        assert swaps == value(restored, "modelmgr_worker_swap_duration_seconds_count") + 1
        # The pool and measured memory, read at scrape time.
        assert value(samples, "modelmgr_worker_ready") == 1
        assert (
            sum(v for (name, _), v in samples.items() if name == "modelmgr_worker_models_loaded")
            >= 1
        )
        assert value(samples, "modelmgr_worker_memory_process_rss_bytes") > 10_000_000
        assert value(samples, "modelmgr_worker_memory_measured_bytes") > 0
        assert value(samples, "process_resident_memory_bytes") > 0


def test_healthz_and_readyz_answer_like_live_and_ready(owner, model_files, tmp_path):
    make_slot("det", onnx_version(owner, model_files, tmp_path))
    with start_worker(env=QUIET) as worker, worker.client() as client:
        assert client.get("/healthz").json() == {"status": "live"}
        worker.wait_ready()
        assert client.get("/readyz").json() == {"ready": True}


def test_metrics_token_is_required_when_set(owner, model_files, tmp_path):
    make_slot("det", onnx_version(owner, model_files, tmp_path))
    env = {**QUIET, "MODELMGR_METRICS_TOKEN": "s3cret"}
    with start_worker(env=env) as worker, worker.client() as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and "MODELMGR_METRICS_TOKEN" in refused.json()["detail"]
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        allowed = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert allowed.status_code == 200 and "modelmgr_worker_requests" in allowed.text
