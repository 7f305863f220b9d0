"""Data drift on several real workers: an uploaded reference and a reset reach every
worker serving the slot, and the slot is as drifted as its worst worker, named."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.api.test_drift_api import send
from tests.deploy.test_fleet_live import fleet

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def own_drift(worker) -> dict:
    return httpx.get(f"{worker.url}/drift/det", timeout=10).json()


def summarised(worker, requests: int) -> dict:
    """The worker's own report once it summarised ``requests`` (a hang guard, no timing)."""
    for _ in range(600):
        report = own_drift(worker)
        if report["versions"] and report["versions"][0]["requests"] >= requests:
            return report
        time.sleep(0.05)
    raise AssertionError(f"never summarised {requests} requests: {report}")


def test_a_reference_reaches_every_worker_and_the_worst_one_sets_the_status(api, settings, det):
    rng = np.random.default_rng(11)
    sample = rng.normal(0.0, 1.0, size=(200, 4)).round(5).tolist()
    with fleet(settings, 2, env={"MODELMGR_DRIFT_REFERENCE": "100"}) as workers:
        uploaded = api.post(
            "/api/v1/slots/det/drift/reference",
            {"inputs": {"x": sample}},
            content_type="application/json",
        )
        assert uploaded.status_code == 200, uploaded.content
        for worker in workers:  # each compares with the same uploaded sample
            reference = own_drift(worker)["versions"][0]["reference"]
            assert reference["source"] == "sample" and reference["complete"]

        send(workers[0], rng, mean=0.0, count=80)
        send(workers[1], rng, mean=2.0, count=80)
        assert summarised(workers[0], 80)["status"] == "ok"
        assert summarised(workers[1], 80)["status"] == "drift"

        report = api.get("/api/v1/slots/det/drift").json()
        assert report["status"] == "drift" and report["worker"] == "w2"
        assert "x[0]" in report["moved"] and report["ref"] == "clf@1"
        assert [(w["name"], w["status"]) for w in report["workers"]] == [
            ("w1", "ok"),
            ("w2", "drift"),
        ]

        reset = api.post(
            "/api/v1/slots/det/drift/reset",
            {"reference_requests": 10},
            content_type="application/json",
        )
        assert reset.status_code == 200, reset.content
        for worker in workers:  # both forgot their references
            own = own_drift(worker)
            assert own["status"] == "no data" and own["reference_requests"] == 10

        settings.MODELMGR_WORKER_DOWN_AFTER = 10_000  # w2 stays "up", and silent
        workers[1].kill()
        partial = api.get("/api/v1/slots/det/drift").json()
        assert partial["worker"] == "w1"
        assert [(w["name"], w["reachable"]) for w in partial["workers"]] == [
            ("w1", True),
            ("w2", False),
        ]
        refused = api.post("/api/v1/slots/det/drift/reset", {}, content_type="application/json")
        assert refused.status_code == 503
        detail = refused.json()["detail"]
        assert "taken by w1 but not by w2" in detail
