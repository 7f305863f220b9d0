"""/ws/events/: pushes server-rendered partials to every logged-in browser tab.

Handlers are named after event types (``switch.progress`` -> ``switch_progress``) and
render the same partials the pages use; htmx's ws extension swaps each top-level
element into the element with the same id (out of band). Events that concern one
user's objects (imports, audit rows) are only rendered for those who may see them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from modelmgr.deploy.worker_events import worker_events_ensure_started
from modelmgr.events import EVENTS_GROUP, LOCAL_GROUP, server_loop_remember
from modelmgr.views import live

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
# How long a rendered push is kept for the user's other tabs: one event reaches them all
# within milliseconds. Only events that are unique (an audit id, a switch id) are shared.
SHARED_RENDER_S = 1.0

# (handler, event, user) -> the render in progress or done, with when it started. Every
# consumer of this process runs on daphne's one event loop, so a plain dict is safe.
_renders: dict[tuple, tuple[float, asyncio.Future]] = {}


async def render_once_per_user(
    kind: str, event: dict[str, Any], user, render: Callable[..., str], *args: Any
) -> str:
    """``render(user, *args)`` through the database thread, once per event and user.

    Database-backed partials are rendered in asgiref's single sync thread, which every
    tab's consumer shares: with one render per tab, a user's fifth tab waited for four
    renders before its own. Tabs of one user get the same HTML, so they share one render.
    """
    now = time.monotonic()
    key = (kind, json.dumps(event, sort_keys=True, default=str), user.pk)
    held = _renders.get(key)
    if held is None or now - held[0] > SHARED_RENDER_S:
        for stale in [k for k, (at, _) in _renders.items() if now - at > SHARED_RENDER_S]:
            del _renders[stale]
        future = asyncio.ensure_future(database_sync_to_async(render)(user, *args))
        _renders[key] = held = (now, future)
    return await asyncio.shield(held[1])


class EventsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with an application code: a refused handshake looks
            # like a network error (1006) to the browser, which htmx would retry forever.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        # Each switch's last phase: two switches' progress must not mix.
        self.last_phase: dict[str, str] = {}
        # (switch_id, phase) of the last switch that ended: its switch.done comes next.
        self.last_failed: tuple[str, str] | None = None
        server_loop_remember(asyncio.get_running_loop())
        await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)
        await self.channel_layer.group_add(LOCAL_GROUP, self.channel_name)
        await self.accept()
        worker_events_ensure_started()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "user", None) is not None:
            await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)
            await self.channel_layer.group_discard(LOCAL_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        """Browsers only listen; anything they send is ignored."""

    async def _push(self, html: str) -> None:
        if html and html.strip():
            await self.send(text_data=html)

    # --- handlers, one per event type ------------------------------------------------

    async def switch_started(self, event: dict[str, Any]) -> None:
        await self._push(live.render_switch_started(event))

    async def switch_progress(self, event: dict[str, Any]) -> None:
        switch_id = str(event.get("switch_id") or "")
        previous = self.last_phase.get(switch_id, "validating")
        phase, failed, terminal = live.phase_of(event, previous=previous)
        if terminal:
            self.last_phase.pop(switch_id, None)
        else:
            self.last_phase[switch_id] = phase
        html = live.render_switch_progress(event, phase=phase, failed=failed)
        if terminal:
            # The failed phase stays known for switch.done, which comes after this.
            self.last_failed = (switch_id, previous if failed else phase)
            html += await render_once_per_user("slots", event, self.user, live.render_slots_oob)
        await self._push(html)

    async def switch_done(self, event: dict[str, Any]) -> None:
        switch_id = str(event.get("switch_id") or "")
        last = self.last_failed
        failed_phase = (
            last[1] if last and last[0] == switch_id else self.last_phase.get(switch_id, "")
        )
        self.last_phase.pop(switch_id, None)
        html = await render_once_per_user(
            f"done:{failed_phase}",
            event,
            self.user,
            partial(live.render_switch_done, failed_phase=failed_phase),
            event,
        )
        await self._push(html)

    async def import_progress(self, event: dict[str, Any]) -> None:
        job = event.get("job") or {}
        if not (self.user.is_staff or job.get("owner") == self.user.get_username()):
            return
        await self._push(live.render_import(job, self.user))

    async def worker_state(self, event: dict[str, Any]) -> None:
        workers = event.get("workers")
        if isinstance(workers, list):
            await self._push(live.render_workers(self.user, workers))
        else:  # a bare nudge: ask the worker
            await self._push(await database_sync_to_async(live.render_workers)(self.user))

    async def profile_progress(self, event: dict[str, Any]) -> None:
        await self._push(live.render_profile_progress(event))

    async def drift_status(self, event: dict[str, Any]) -> None:
        await self._push(live.render_drift_status(event))

    async def audit_event(self, event: dict[str, Any]) -> None:
        html = await render_once_per_user(
            "audit", event, self.user, live.render_audit, event.get("id")
        )
        await self._push(html)

    async def watch_update(self, event: dict[str, Any]) -> None:
        """A health watch moved (figures, verdict, rollback): the slot cards anew."""
        html = await render_once_per_user("slots", event, self.user, live.render_slots_oob)
        await self._push(html)
