"""Drift reaches open pages live: a real worker's drift status change becomes a
``drift.status`` event (the web's relay of the worker's /events) and a pushed badge."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from asgiref.sync import sync_to_async

from modelmgr.deploy import drift as drift_services
from modelmgr.views.live import render_drift_status
from tests.inference.support import make_slot, onnx_version
from tests.views.test_consumers import (  # noqa: F401 - the fixture closes ORM connections
    _close_consumer_connections,
    connect_as_session,
)
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ENV = {
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
    "MODELMGR_DRIFT_REFERENCE": "40",
}
WAIT_S = 60  # turns a hang into a failure; not a timing assertion


async def _html_containing(communicator, *texts: str) -> str:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        html = await communicator.receive_from(timeout=max(remaining, 0.1))
        if all(text in html for text in texts):
            return html


async def _send(http: httpx.AsyncClient, rng, *, mean: float, count: int) -> None:
    for _ in range(count):
        x = rng.normal(mean, 1.0, size=(1, 4)).round(5).tolist()
        assert (await http.post("/infer/det", json={"inputs": {"x": x}})).status_code == 200


async def test_a_slot_that_drifts_is_pushed_to_open_pages(settings, staff, model_files, tmp_path):
    version = await sync_to_async(onnx_version)(staff, model_files, tmp_path)
    await sync_to_async(make_slot)("det", version)
    worker = await sync_to_async(start_worker)(env=ENV)
    drift_services.drift_events_forget()
    rng = np.random.default_rng(4)
    try:
        await sync_to_async(worker.wait_ready)()
        settings.MODELMGR_WORKER_URL = worker.url
        settings.MODELMGR_WORKER_EVENTS_RELAY = True
        communicator = await connect_as_session(staff)
        async with httpx.AsyncClient(base_url=worker.url, timeout=60) as http:
            await _send(http, rng, mean=0.0, count=80)
            await _html_containing(communicator, 'id="drift-badge-det"', 'data-status="ok"')
            await _send(http, rng, mean=2.5, count=40)
        # The workers region re-renders with the badge, and the drift.status event pushes
        # the badge out of band with a toast naming the slot.
        html = await _html_containing(communicator, "Data drift on <strong>det</strong>")
        assert 'id="drift-badge-det"' in html and 'data-status="drift"' in html
        assert 'hx-swap-oob="true"' in html and "(was ok)" in html
        await communicator.disconnect()
    finally:
        settings.MODELMGR_WORKER_EVENTS_RELAY = False
        await sync_to_async(worker.stop)()


def test_drift_events_only_for_changes():
    drift_services.drift_events_forget()
    ok = {"data_drift": {"det": {"version_id": 1, "status": "ok", "moved": []}}}
    assert drift_services.drift_events_from_status(ok) == []
    moved = {"data_drift": {"det": {"version_id": 1, "status": "drift", "moved": ["x[0]"]}}}
    events = drift_services.drift_events_from_status(moved)
    assert events == [
        {
            "slot": "det",
            "worker": "",
            "version_id": 1,
            "status": "drift",
            "previous": "ok",
            "moved": ["x[0]"],
        }
    ]
    assert drift_services.drift_events_from_status(moved) == []
    html = render_drift_status(events[0])
    assert 'id="drift-badge-det"' in html and "moved: x[0]" in html and "(was ok)" in html


def test_a_slot_on_several_workers_is_as_drifted_as_its_worst_worker():
    drift_services.drift_events_forget()
    ok = {"data_drift": {"det": {"version_id": 1, "status": "ok", "moved": []}}}
    moved = {"data_drift": {"det": {"version_id": 1, "status": "drift", "moved": ["x[0]"]}}}
    assert drift_services.drift_events_from_status(ok, "w1") == []
    assert drift_services.drift_events_from_status(ok, "w2") == []
    [event] = drift_services.drift_events_from_status(moved, "w2")
    assert (event["status"], event["worker"], event["previous"]) == ("drift", "w2", "ok")
    # w1 still sees nothing: the slot stays drifted, nothing flips back.
    assert drift_services.drift_events_from_status(ok, "w1") == []
    [event] = drift_services.drift_events_from_status(ok, "w2")
    assert (event["status"], event["previous"]) == ("ok", "drift")
    # A worker that stops serving the slot no longer counts.
    assert drift_services.drift_events_from_status(moved, "w1")[0]["status"] == "drift"
    [event] = drift_services.drift_events_from_status({"data_drift": {}}, "w1")
    assert (event["status"], event["worker"]) == ("ok", "w2")
