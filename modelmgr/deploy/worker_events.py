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
from django.db import close_old_connections

from modelmgr.deploy.drift import drift_events_from_status
from modelmgr.deploy.fleet import Member, fallback_member, fleet_members
from modelmgr.deploy.workers import worker_down_entry, worker_entry
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


class _Fleet:
    """The latest entry of each relayed worker; published whole, so a page lists every
    worker whichever one changed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.entries: dict[str, dict[str, Any]] = {}
        self.down: list[dict[str, Any]] = []

    def update(self, member: Member, entry: dict[str, Any]) -> None:
        if member.registered:
            entry = worker_entry(member, **entry)
        with self.lock:
            self.entries[member.control_url] = entry
        self.publish()

    def publish(self) -> None:
        with self.lock:
            workers = [self.entries[u] for u in self.order if u in self.entries] + self.down
        _publish(workers)


def _relay_forever() -> None:
    """Keep one relay thread per up worker (modelmgr.deploy.fleet), re-read every
    RETRY_S; each stops when its worker is no longer up."""
    global _started
    fleet = _Fleet()
    relays: dict[str, threading.Thread] = {}
    wanted: set[str] = set()  # the up workers' URLs; a relay of another one stops
    while True:
        if not settings.MODELMGR_WORKER_EVENTS_RELAY:  # turned off (tests do): stop
            with _start_lock:
                _started = False
            return
        try:
            close_old_connections()
            members = fleet_members()
            close_old_connections()
        except Exception:  # noqa: BLE001 - the database away: relay the fallback worker
            log.warning("worker state relay could not read the workers", exc_info=True)
            members = []
        up = [m for m in members if m.up] or [fallback_member()]
        with fleet.lock:
            before = (list(fleet.order), [w["name"] for w in fleet.down])
            fleet.order = [m.control_url for m in up]
            fleet.down = [worker_down_entry(m) for m in members if not m.up]
            for url in set(fleet.entries) - set(fleet.order):
                del fleet.entries[url]
            moved = before != (fleet.order, [w["name"] for w in fleet.down])
        if moved and fleet.entries:  # a worker went down or came up: say so at once
            fleet.publish()
        wanted.clear()
        wanted.update(m.control_url for m in up)
        for member in up:
            relay = relays.get(member.control_url)
            if relay is None or not relay.is_alive():
                relay = threading.Thread(
                    target=_relay_one,
                    args=(member, fleet, wanted),
                    name=f"worker-events-{member.name}",
                    daemon=True,
                )
                relays[member.control_url] = relay
                relay.start()
        for url in list(relays):
            if url not in wanted:
                relays.pop(url)  # it sees ``wanted`` change and stops after its stream
        time.sleep(RETRY_S)


def _relay_one(member: Member, fleet: _Fleet, wanted: set[str]) -> None:
    """Relay one worker's /events while it is wanted (up, relaying on)."""
    told_unreachable = False
    client = member.client
    while member.control_url in wanted and settings.MODELMGR_WORKER_EVENTS_RELAY:
        try:
            for status in stream_worker_states(client):
                if not settings.MODELMGR_WORKER_EVENTS_RELAY:
                    break
                told_unreachable = False
                fleet.update(
                    member, {"url": client.label, "reachable": True, "error": "", "status": status}
                )
                drift_events_from_status(status, member.name)
        except httpx.HTTPError as exc:
            if not told_unreachable:
                error = client.unavailable(exc, doing="watching its state").detail
                entry = {"url": client.label, "reachable": False, "error": error, "status": None}
                fleet.update(member, entry)
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
