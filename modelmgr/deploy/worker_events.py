"""Relay the worker's state to this process's browsers as it changes.

The worker streams its status on GET /events whenever it changes (a model loaded,
swapped, drained, evicted; ready; memory). A daemon thread here reads that stream and
publishes each status as a ``worker.state`` event to the browsers connected to this
process (``modelmgr.events.LOCAL_GROUP``), which re-render /status at once. When the
worker cannot be reached, the browsers are told once, and the thread tries again every
RETRY_S. It starts with the first browser that connects, so processes without browsers
(tests, commands) never open the stream.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx
from django.conf import settings

from modelmgr.deploy.client import worker_client
from modelmgr.events import LOCAL_GROUP, events_publish

log = logging.getLogger(__name__)

RETRY_S = 2.0
# The worker sends a blank line every few seconds; this much silence means it is gone.
READ_TIMEOUT_S = 15.0

_started = False
_start_lock = threading.Lock()


def worker_events_ensure_started() -> None:
    global _started
    if not settings.MODELMGR_WORKER_EVENTS_RELAY:
        return
    with _start_lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_relay_forever, name="worker-events", daemon=True).start()


def _publish(workers: list[dict[str, Any]]) -> None:
    events_publish("worker.state", {"workers": workers}, group=LOCAL_GROUP)


def _relay_forever() -> None:
    global _started
    told_unreachable = False
    while True:
        if not settings.MODELMGR_WORKER_EVENTS_RELAY:  # turned off (tests do): stop
            with _start_lock:
                _started = False
            return
        client = worker_client()
        try:
            for status in stream_worker_states(client):
                if not settings.MODELMGR_WORKER_EVENTS_RELAY:
                    break
                told_unreachable = False
                _publish([{"url": client.label, "reachable": True, "error": "", "status": status}])
        except httpx.HTTPError as exc:
            if not told_unreachable:
                error = client.unavailable(exc, doing="watching its state").detail
                entry = {"url": client.label, "reachable": False, "error": error, "status": None}
                _publish([entry])
                told_unreachable = True
        except Exception:  # noqa: BLE001 - the relay must outlive any one bad stream
            log.exception("worker state relay failed; retrying")
        time.sleep(RETRY_S)


def stream_worker_states(client):
    """Yield each status the worker's GET /events reports (raises httpx.HTTPError)."""
    timeout = httpx.Timeout(client.timeout.connect, read=READ_TIMEOUT_S)
    with client.stream_get("/events", timeout=timeout) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("status"), dict):
                yield event["status"]
