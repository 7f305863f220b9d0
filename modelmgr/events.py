"""Live events for browsers: services publish, the /ws/events/ consumer renders and pushes.

Every event goes to the one Channels group ``events``. Messages are nudges for the UI,
never the truth (the database is): a lost message costs a stale bar until the next
event or poll, so publishing never fails the change that triggered it.

Event types (``type`` is the consumer's handler name with '.' for '_'):

- ``switch.started``: ``{"switch_id", "kind", "assignments", "actor"}`` once a switch
  reaches the worker, before its first ``switch.progress`` (modelmgr.deploy.switch).
- ``switch.progress``: a worker NDJSON switch event plus ``switch_id`` (modelmgr.deploy).
- ``switch.done``: ``{"switch_id", "ok", "slots": {...} | "error": str}`` (settings page).
- ``import.progress``: ``{"job": {...}}`` for a DownloadJob (modelmgr.imports).
- ``worker.state``: ``{"workers": [{"url", "reachable", "error", "status"}]}``, the
  worker's status as its /events stream reports it, relayed by each web process to its
  own browsers only (``LOCAL_GROUP``; modelmgr.deploy.worker_events).
- ``drift.status``: ``{"slot", "version_id", "status", "previous", "moved"}`` when a
  slot's data drift status changes, relayed like ``worker.state`` (modelmgr.deploy.drift).
- ``audit.event``: ``{"id": <AuditEvent pk>}``, sent after the audit row commits.
- ``watch.update``: ``{"watch": {...}}`` when a health watch's figures or verdict change
  (modelmgr.deploy.watch); pages re-render the slot cards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save

log = logging.getLogger(__name__)

EVENTS_GROUP = "events"
# The browsers connected to this process. Every web process relays the worker's state
# itself; sent to EVENTS_GROUP through Redis each browser would get one copy per process.
_HERE = f"{socket.gethostname()}.{os.getpid()}"
LOCAL_GROUP = ("events.local." + re.sub(r"[^A-Za-z0-9_.-]", "-", _HERE))[:99]
PUBLISH_TIMEOUT_S = 5.0

# The event loop that serves the WebSocket consumers (daphne's), remembered by the
# consumer on connect. The in-memory layer's queues belong to that loop: a group_send
# from another loop (async_to_sync in a plain thread makes one) fills the queue without
# waking the consumer, so publishes from threads are handed to this loop instead.
_server_loop: asyncio.AbstractEventLoop | None = None
_server_loop_lock = threading.Lock()


def server_loop_remember(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    with _server_loop_lock:
        _server_loop = loop


def _usable_server_loop() -> asyncio.AbstractEventLoop | None:
    loop = _server_loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def events_publish(event_type: str, payload: dict[str, Any], *, group: str = EVENTS_GROUP) -> None:
    """Send ``payload`` as an ``event_type`` message to every connected browser.

    Call it from sync code (services, threads, signal handlers); it waits until the
    message is handed to the layer, so one thread's events arrive in order. Layer
    errors (Redis down, a full channel) are logged and swallowed: the change that
    triggered the event already happened.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    message = {**payload, "type": event_type}
    try:
        _send(layer, message, group)
    except Exception:  # noqa: BLE001 - a UI nudge must never break the change itself
        log.warning("could not publish %s to the events group", event_type, exc_info=True)


def _send(layer, message: dict[str, Any], group: str) -> None:
    loop = _usable_server_loop()
    here = _running_loop()
    if loop is not None and here is loop:
        # Sync code on the loop's own thread cannot wait for the loop: fire and go.
        loop.create_task(layer.group_send(group, message))
    elif loop is not None:
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        # concurrent.futures.TimeoutError is the builtin TimeoutError (an Exception) here.
        future.result(timeout=PUBLISH_TIMEOUT_S)
    elif here is not None:
        # Sync code inside another event loop's thread (a tool, a test driving a browser):
        # no consumer of this process listens there, and async_to_sync cannot run here.
        log.debug("not publishing %s from inside a running event loop", message["type"])
    else:
        async_to_sync(layer.group_send)(group, message)


def _audit_saved(sender, instance, created: bool, **kwargs) -> None:
    if not created:
        return
    pk = instance.pk
    # After commit: a browser told about a row must be able to read it, and a
    # rolled-back change must not announce a row that never existed.
    transaction.on_commit(lambda: events_publish("audit.event", {"id": pk}), robust=True)


def connect_signals() -> None:
    """Called from ModelmgrConfig.ready()."""
    from modelmgr.models import AuditEvent

    post_save.connect(_audit_saved, sender=AuditEvent, dispatch_uid="modelmgr.events.audit")
