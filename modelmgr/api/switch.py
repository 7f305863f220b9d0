"""/switch: make several slots serve new versions at once, all or nothing.

A caller that asks for ``application/x-ndjson`` (or ``?stream=true``) watches the switch
as ``ollama pull`` shows a download: one JSON line per progress event, then ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connections
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.deploy.errors import SlotErrors
from modelmgr.deploy.switch import SwitchResult, slots_switch
from modelmgr.exceptions import ModelmgrError

log = logging.getLogger(__name__)
router = Router(tags=["slots"])
NDJSON = "application/x-ndjson"


class SlotSwitchOut(Schema):
    ref: str | None = Field(description="name@version now served (null: nothing)")
    previous: str | None = Field(description="name@version served before")
    version_id: int | None
    load_ms: float = Field(description="loading this version in the worker (0: already loaded)")
    warmup_ms: float = Field(description="its warm-up run on a dummy input (0: already loaded)")
    unchanged: bool = Field(description="the slot already served this version; not touched")


class SwitchOut(Schema):
    switch_id: str
    ok: bool
    slots: dict[str, SlotSwitchOut]
    swap_ms: float = Field(
        description="the swap step alone: the worker replacing its routing table, every "
        "requested slot at once (microseconds; loading and warm-up are per slot)"
    )
    total_ms: float = Field(
        description="the whole request: validation, loads, warm-ups, swap and commit"
    )


class SwitchError(Schema):
    detail: str
    slots: dict[str, str] = Field(description="slot -> cause")


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "null"]},
                    "description": "slot -> name@version, owner/name@version, bare name (newest "
                    "available) or null (stop serving)",
                },
                "example": {"detector": "yolo-v8-small@1.1", "policy": "walk@3"},
            }
        },
    },
    "parameters": [
        {
            "in": "query",
            "name": "stream",
            "required": False,
            "schema": {"type": "boolean", "default": False},
            "description": f"stream progress as {NDJSON} (as does 'Accept: {NDJSON}'); "
            "false answers one JSON object whatever the Accept header",
        }
    ],
    "responses": {
        200: {
            "content": {
                NDJSON: {
                    "schema": {
                        "type": "string",
                        "description": "one JSON object per line: the switch.progress "
                        "events of /ws/events/ (phase, slot_done, result; each with "
                        'switch_id), then {"event": "done", ...}',
                    },
                    "example": "\n".join(
                        [
                            '{"event":"phase","phase":"validating","slot":"detector",'
                            '"ref":"yolo-v8-small@1.1","ts":1767225600.1,"switch_id":"3f2a"}',
                            '{"event":"phase","phase":"loading",...}',
                            '{"event":"phase","phase":"warming",...}',
                            '{"event":"phase","phase":"swapping",...}',
                            '{"event":"slot_done","slot":"detector",...}',
                            '{"event":"result","ok":true,...}',
                            '{"event":"done","switch_id":"3f2a","ok":true,"slots":{...},'
                            '"swap_ms":0.02,"total_ms":812.4}',
                        ]
                    ),
                }
            }
        }
    },
}


def _assignments(request: HttpRequest) -> dict[str, str | None]:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise SlotErrors(f"the body is not JSON: {exc}", status=422) from None
    if not isinstance(body, dict) or not body:
        raise SlotErrors(
            'send a JSON object of slot -> "name@version", e.g. {"detector": "yolo@1.1"}',
            status=422,
        )
    return body


@router.post(
    "/switch",
    response={
        200: SwitchOut,
        403: SwitchError,
        404: SwitchError,
        409: SwitchError,
        422: SwitchError,
        503: SwitchError,
    },
    summary="Switch slots to versions, all or nothing",
    openapi_extra=_BODY_DOC,
)
def switch(request: HttpRequest):
    """Load and warm up every requested version in the worker, swap them in at once, then
    record the new desired state. On any failure nothing changes, the old versions keep
    serving, and the answer names the cause per slot (``slots``): 404/403/422/409 for a
    refused request or a failed load (a corrupt artifact names the file), 503 when the
    worker is down or died mid-switch or the database refused the commit. A failure after
    the worker swapped (the commit, a slot deleted meanwhile: 404) first puts the worker
    back on the desired state in the database, so the old versions serve again by the time
    the answer comes.
    Progress is pushed to /ws/events/ as ``switch.progress``.

    **Streaming.** With ``Accept: application/x-ndjson`` (or ``?stream=true``) the answer
    is ``200 application/x-ndjson`` once the switch has reached the worker: one line per
    ``switch.progress`` event as it happens (``phase``: validating, loading, warming,
    swapping, unloading; ``slot_done``; ``result``), then a last line
    ``{"event": "done", ...}`` carrying the body the plain call answers, or, when the
    switch failed, ``{"event": "done", "ok": false, "status": <the plain call's HTTP
    status>, "detail": ..., "slots": {slot: cause}}``. A request refused before the
    worker is asked (bad body, unknown slot or version, a version that does not fit the
    slot's contract, permissions, another switch holding the lock past its timeout) is
    answered exactly as without streaming: a plain JSON error. The stream only watches:
    a client that goes away does not stop the switch, which commits or fails as it would
    have.

    Staff (or users with the change_slot permission) may switch anything they see;
    others only slots whose current and new versions they own.
    """
    assignments = _assignments(request)
    if _wants_stream(request):
        return _switch_streamed(request, assignments)
    result = slots_switch(
        assignments=assignments,
        actor=request.user,
        actor_label=request_actor_label(request),
    )
    return result.as_dict()


def _wants_stream(request: HttpRequest) -> bool:
    flag = request.GET.get("stream", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    # */* (curl's default) prefers the first: streams only when asked for by name.
    return request.get_preferred_type(["application/json", NDJSON]) == NDJSON


@dataclass
class _Outcome:
    """How the switch ended: the feed's last item."""

    result: SwitchResult | None = None
    error: BaseException | None = None


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


def _switch_streamed(request: HttpRequest, assignments: dict[str, str | None]):
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
            outcome = _Outcome(
                result=slots_switch(
                    assignments=assignments,
                    actor=actor,
                    actor_label=actor_label,
                    listener=feed.put,
                )
            )
        except Exception as exc:  # noqa: BLE001 - every failure ends the stream
            outcome = _Outcome(error=exc)
        finally:
            connections.close_all()
            feed.put(outcome)

    threading.Thread(target=run, name="switch-stream", daemon=True).start()
    first = feed.get()
    if isinstance(first, _Outcome) and first.error is not None:
        raise first.error
    lines = _lines_async(feed, first) if isinstance(request, ASGIRequest) else _lines(feed, first)
    response = StreamingHttpResponse(lines, content_type=NDJSON)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each line on as it comes
    return response


def _lines(feed: _Feed, item: dict[str, Any] | _Outcome) -> Iterator[bytes]:
    switch_id = None
    while not isinstance(item, _Outcome):
        switch_id = item.get("switch_id", switch_id)
        yield _line(item)
        item = feed.get()
    yield _line(_done(item, switch_id))


async def _lines_async(feed: _Feed, item: dict[str, Any] | _Outcome) -> AsyncIterator[bytes]:
    switch_id = None
    while not isinstance(item, _Outcome):
        switch_id = item.get("switch_id", switch_id)
        yield _line(item)
        item = await feed.aget()
    yield _line(_done(item, switch_id))


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, cls=DjangoJSONEncoder, separators=(",", ":")).encode() + b"\n"


def _done(outcome: _Outcome, switch_id: str | None) -> dict[str, Any]:
    """The last line: the plain call's 200 body, or its error body with its status."""
    if outcome.result is not None:
        body = SwitchOut.model_validate(outcome.result.as_dict()).model_dump(mode="json")
        return {"event": "done", **body}
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
