"""Helpers for tests that switch against a real worker subprocess (tests/workerproc.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from modelmgr.events import EVENTS_GROUP
from tests.inference.support import GATE_RUNTIMES
from tests.workerproc import WorkerProcess, start_worker

# The gate runtime lets a test make a load hang or fail on cue (tests/inference).
WORKER_ENV = {"MODELMGR_WORKER_RUNTIMES": GATE_RUNTIMES[0], "MODELMGR_STATS_FLUSH_S": "0.2"}
PHASES = ("validating", "loading", "warming", "swapping", "unloading")


@contextlib.contextmanager
def live_worker(settings, **env) -> Iterator[WorkerProcess]:
    """A ready worker on this test's database; the web side (settings) points at it."""
    with start_worker(env={**WORKER_ENV, **{k: str(v) for k, v in env.items()}}) as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        yield worker


def switch(api, body: dict):
    return api.post("/api/v1/switch", body, content_type="application/json")


def predict(api, slot: str, inputs: dict | None = None):
    body = json.dumps({"inputs": inputs or {"x": [[1.0, 2.0, 3.0, 4.0]]}})
    return api.generic(
        "POST", f"/api/v1/slots/{slot}/predict", body, content_type="application/json"
    )


def served_by(api, slot: str) -> str:
    response = predict(api, slot)
    assert response.status_code == 200, response.content
    return response.json()["model"]


class EventsListener:
    """A channel in the ``events`` group, read with the real channel layer."""

    def __init__(self):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(EVENTS_GROUP, self.channel)

    def switch_events(self, *, limit: float = 60.0) -> list[dict]:
        """switch.progress messages up to and including the first result event.

        ``limit`` guards against a hang; it is not a timing assertion.
        """

        async def drain() -> list[dict]:
            got = []
            while True:
                message = await asyncio.wait_for(self.layer.receive(self.channel), limit)
                if message.get("type") != "switch.progress":
                    continue
                got.append(message)
                if message.get("event") == "result":
                    return got

        return async_to_sync(drain)()

    def close(self) -> None:
        async_to_sync(self.layer.group_discard)(EVENTS_GROUP, self.channel)
