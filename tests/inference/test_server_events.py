"""The real worker's GET /events: its status at once, then again whenever it changes."""

from __future__ import annotations

import contextlib
import json
import queue
import threading

import httpx
import pytest

from modelmgr.deploy.client import WorkerClient
from modelmgr.deploy.worker_events import stream_worker_states
from tests.inference.support import onnx_version
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUIET = {"MODELMGR_RECONCILE_INTERVAL_S": "3600", "MODELMGR_STATS_FLUSH_S": "3600"}
WAIT_S = 30  # a deadline that turns a hang into a failure, not a timing assertion


def _read_states(client: WorkerClient, into: queue.Queue, stop: threading.Event) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the worker stops at the end of the test
        for status in stream_worker_states(client):
            into.put(status)
            if stop.is_set():
                return


def _next_with_models(states: queue.Queue, refs: list[str]) -> dict:
    """Statuses in between (the control lock taken, say) may come first."""
    while True:
        status = states.get(timeout=WAIT_S)
        if [m["ref"] for m in status["models"]] == refs:
            return status


def test_the_state_stream_reports_loads_and_unloads_as_they_happen(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    with start_worker(env=QUIET) as worker:
        worker.wait_ready()
        client = WorkerClient(url=worker.url)
        states: queue.Queue = queue.Queue()
        stop = threading.Event()
        reader = threading.Thread(target=_read_states, args=(client, states, stop), daemon=True)
        reader.start()
        first = states.get(timeout=WAIT_S)
        assert first["ready"] is True and first["models"] == []

        with worker.client() as http:
            assert http.post("/load", json={"version_id": version.pk}).status_code == 200
            loaded = _next_with_models(states, [version.ref])
            assert loaded["models"][0]["state"] == "ready"
            assert http.post("/unload", json={"version_id": version.pk}).status_code == 200
            assert _next_with_models(states, [])["memory"]["used_bytes"] == 0
        stop.set()
        client.close()


def test_the_stream_is_ndjson_with_keepalive_lines(owner):
    with start_worker(env=QUIET) as worker:
        worker.wait_ready()
        with worker.client(timeout=30) as http, http.stream("GET", "/events") as response:
            assert response.headers["content-type"] == "application/x-ndjson"
            lines = response.iter_lines()
            event = json.loads(next(lines))
            assert event["type"] == "state" and event["status"]["worker_id"]
            assert next(lines) == ""  # nothing changed: a keep-alive blank line


def test_measured_memory_moving_alone_is_no_state_change():
    from inference.server import state_digest

    status = {"memory": {"kind": "ram", "used_bytes": 10, "process_rss_bytes": 400 << 20}}
    moved = {"memory": {"kind": "ram", "used_bytes": 10, "process_rss_bytes": 401 << 20}}
    assert state_digest(status) == state_digest(moved)
    loaded = {"memory": {"kind": "ram", "used_bytes": 20, "process_rss_bytes": 401 << 20}}
    assert state_digest(status) != state_digest(loaded)
