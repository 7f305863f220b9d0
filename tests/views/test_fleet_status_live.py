"""/status lists every registered worker, and is live for each: a change in the second
worker (not the MODELMGR_WORKER_URL one) reaches an open page; a worker that dies is
shown down once it missed its heartbeats."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async

from modelmgr.models import Worker as WorkerRow
from tests.inference.support import eventually, onnx_version
from tests.views.test_consumers import (  # noqa: F401 - the fixture closes ORM connections
    _close_consumer_connections,
    connect_as_session,
)
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUIET = {
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
    "MODELMGR_WORKER_HEARTBEAT_S": "0.2",
}
WAIT_S = 30  # turns a hang into a failure; not a timing assertion


async def _html_containing(communicator, *texts: str) -> str:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        html = await communicator.receive_from(timeout=max(remaining, 0.1))
        if 'id="workers"' in html and all(text in html for text in texts):
            return html


async def test_every_worker_is_on_the_status_page_live(settings, staff, model_files, tmp_path):
    version = await sync_to_async(onnx_version)(staff, model_files, tmp_path)
    first = await sync_to_async(start_worker)(env={**QUIET, "MODELMGR_WORKER_NAME": "alpha"})
    second = await sync_to_async(start_worker)(
        env={**QUIET, "MODELMGR_WORKER_NAME": "beta", "MODELMGR_WORKER_GROUP": "gpu"}
    )
    try:
        await sync_to_async(first.wait_ready)()
        await sync_to_async(second.wait_ready)()
        await sync_to_async(eventually)(
            lambda: WorkerRow.objects.count() == 2, what="both registered"
        )
        settings.MODELMGR_WORKER_URL = first.url
        settings.MODELMGR_WORKER_EVENTS_RELAY = True
        communicator = await connect_as_session(staff)
        html = await _html_containing(communicator, "alpha", "beta", "gpu")
        assert version.ref not in html

        async with httpx.AsyncClient(base_url=second.url, timeout=60) as http:
            loaded = await http.post("/load", json={"version_id": version.pk})
            assert loaded.status_code == 200
        await _html_containing(communicator, version.ref, "alpha")

        await sync_to_async(second.kill)()  # missed heartbeats: down within 0.6 s
        await _html_containing(communicator, "down: no heartbeat since", "alpha")
        await communicator.disconnect()
    finally:
        settings.MODELMGR_WORKER_EVENTS_RELAY = False
        await sync_to_async(second.stop)()
        await sync_to_async(first.stop)()
