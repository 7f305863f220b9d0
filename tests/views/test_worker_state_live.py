"""/status is live: the worker's changes reach an open page over /ws/events/.

A real worker process, the web side's relay thread reading its /events stream, and the
WebSocket consumer rendering the workers partial for the browser.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async

from tests.inference.support import onnx_version
from tests.views.test_consumers import (  # noqa: F401 - the fixture closes ORM connections
    _close_consumer_connections,
    connect_as_session,
)
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUIET = {"MODELMGR_RECONCILE_INTERVAL_S": "3600", "MODELMGR_STATS_FLUSH_S": "3600"}
WAIT_S = 30  # turns a hang into a failure; not a timing assertion


async def _html_containing(communicator, text: str) -> str:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        html = await communicator.receive_from(timeout=max(remaining, 0.1))
        if 'id="workers"' in html and text in html:
            return html


async def test_a_model_loaded_in_the_worker_appears_on_open_status_pages(
    settings, staff, model_files, tmp_path
):
    version = await sync_to_async(onnx_version)(staff, model_files, tmp_path)
    worker = await sync_to_async(start_worker)(env=QUIET)
    try:
        await sync_to_async(worker.wait_ready)()
        settings.MODELMGR_WORKER_URL = worker.url
        settings.MODELMGR_WORKER_EVENTS_RELAY = True
        communicator = await connect_as_session(staff)
        html = await _html_containing(communicator, "ready")
        assert version.ref not in html

        async with httpx.AsyncClient(base_url=worker.url, timeout=60) as http:
            loaded = await http.post("/load", json={"version_id": version.pk})
            assert loaded.status_code == 200
        html = await _html_containing(communicator, version.ref)
        assert "onnxruntime" in html or "CPUExecutionProvider" in html

        await sync_to_async(worker.kill)()
        html = await _html_containing(communicator, "unreachable")
        await communicator.disconnect()
    finally:
        settings.MODELMGR_WORKER_EVENTS_RELAY = False
        await sync_to_async(worker.stop)()
