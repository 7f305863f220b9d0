"""POST /api/v1/switch as a stream: one JSON line per progress event, then ``done``.

The switch runs in a thread of its own; this module only watches it (modelmgr.api.switch
decides when a caller asked for the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connections
from django.http import HttpRequest, StreamingHttpResponse

from modelmgr.api.auth import request_actor_label
from modelmgr.deploy.switch import SwitchResult
from modelmgr.deploy.watch_switch import slots_switch_watched
from modelmgr.exceptions import ModelmgrError

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"


@dataclass
class _Outcome:
    """How the switch ended: the feed's last item."""

    result: SwitchResult | None = None
    error: BaseException | None = None
    watches: dict[str, int] | None = None  # slot -> health watch id (a watched switch)


class _Feed:
    """The events of one switch, in order, from its thread to one response; _Outcome last.

    Read by a sync generator (WSGI, the test client) or, under ASGI, by an async one
    that awaits on the event loop and never blocks it.
    """

    def __init__(self) -> None:
        self._items: deque[dict[str, Any] | _Outcome] = deque()
        self._ready = threading.Condition()
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def put(self, item: dict[str, Any] | _Outcome) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify_all()
            wake, self._wake = self._wake, None
        if wake is not None:
            loop, event = wake
            with contextlib.suppress(RuntimeError):  # the reader's loop has closed
                loop.call_soon_threadsafe(event.set)

    def get(self) -> dict[str, Any] | _Outcome:
        with self._ready:
            self._ready.wait_for(lambda: self._items)
            return self._items.popleft()

    async def aget(self) -> dict[str, Any] | _Outcome:
        while True:
            with self._ready:  # held by put() for microseconds only
                if self._items:
                    return self._items.popleft()
                event = asyncio.Event()
                self._wake = (asyncio.get_running_loop(), event)
            await event.wait()


def switch_streamed(
    request: HttpRequest,
    assignments: dict[str, str | None],
    *,
    expected: dict | None = None,
    force: bool = False,
    done_body: Callable[[SwitchResult], dict[str, Any]],
    watch=None,
):
    """Run the switch in a thread of its own (not the response's: a client that goes
    away stops reading, never the switch) and answer with its events as they come.

    The service publishes nothing before it asks the worker, so an error that arrives
    before the first event is a refusal: raised here, it gets the plain JSON answer.
    """
    feed = _Feed()
    actor, actor_label = request.user, request_actor_label(request)

    def run() -> None:
        close_old_connections()
        outcome = _Outcome(error=RuntimeError("the switch thread stopped"))
        try:
            result, watches = slots_switch_watched(
                assignments=assignments,
                watch=watch,
                actor=actor,
                actor_label=actor_label,
                expected=expected,
                force=force,
                listener=feed.put,
            )
            outcome = _Outcome(result=result, watches=watches)
        except Exception as exc:  # noqa: BLE001 - every failure ends the stream
            outcome = _Outcome(error=exc)
        finally:
            connections.close_all()
            feed.put(outcome)

    threading.Thread(target=run, name="switch-stream", daemon=True).start()
    first = feed.get()
    if isinstance(first, _Outcome) and first.error is not None:
        raise first.error
    lines = (
        _lines_async(feed, first, done_body)
        if isinstance(request, ASGIRequest)
        else _lines(feed, first, done_body)
    )
    response = StreamingHttpResponse(lines, content_type=NDJSON)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each line on as it comes
    return response


def _lines(feed: _Feed, item: dict[str, Any] | _Outcome, done_body) -> Iterator[bytes]:
    switch_id = None
    while not isinstance(item, _Outcome):
        switch_id = item.get("switch_id", switch_id)
        yield _line(item)
        item = feed.get()
    yield _line(_done(item, switch_id, done_body))


async def _lines_async(
    feed: _Feed, item: dict[str, Any] | _Outcome, done_body
) -> AsyncIterator[bytes]:
    switch_id = None
    while not isinstance(item, _Outcome):
        switch_id = item.get("switch_id", switch_id)
        yield _line(item)
        item = await feed.aget()
    yield _line(_done(item, switch_id, done_body))


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, cls=DjangoJSONEncoder, separators=(",", ":")).encode() + b"\n"


def _done(outcome: _Outcome, switch_id: str | None, done_body) -> dict[str, Any]:
    """The last line: the plain call's 200 body, or its error body with its status."""
    if outcome.result is not None:
        watches = {"watches": outcome.watches} if outcome.watches else {}
        return {"event": "done", **done_body(outcome.result), **watches}
    error = outcome.error
    if isinstance(error, ModelmgrError):
        status, detail = error.status, error.detail
    else:
        log.error("switch %s failed", switch_id or "-", exc_info=error)
        status, detail = 500, "the switch failed on an internal error (see the server log)"
    return {
        "event": "done",
        "switch_id": switch_id,
        "ok": False,
        "status": status,
        "detail": detail,
        "slots": dict(getattr(error, "slots", None) or {}),
    }
