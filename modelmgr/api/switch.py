"""/switch: make several slots serve new versions at once, all or nothing.

A caller that asks for ``application/x-ndjson`` (or ``?stream=true``) watches the switch
as ``ollama pull`` shows a download (modelmgr.api.switch_stream).
"""

from __future__ import annotations

import json

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.api.switch_stream import NDJSON, switch_streamed
from modelmgr.api.watches import watch_of
from modelmgr.deploy.errors import SlotErrors
from modelmgr.deploy.slots import SLOT_NAME_MAX
from modelmgr.deploy.watch_switch import slots_switch_watched
from modelmgr.registry.validation import SLUG_RE

router = Router(tags=["slots"])


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
    watches: dict[str, int] | None = Field(
        None, description="slot -> id of its health watch (GET /api/v1/switch/watches/{id})"
    )


class SwitchError(Schema):
    detail: str
    # Not every refusal names slots (an unknown slot is a plain 404 {"detail"}).
    slots: dict[str, str] | None = Field(None, description="slot -> cause")


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "additionalProperties": {"type": ["string", "null"]},
                            "description": "slot -> name@version, owner/name@version, bare "
                            "name (newest available) or null (stop serving)",
                        },
                        {
                            "type": "object",
                            "required": ["slots"],
                            "additionalProperties": False,
                            "properties": {
                                "slots": {
                                    "type": "object",
                                    "additionalProperties": {"type": ["string", "null"]},
                                    "description": "slot -> name@version (as the plain form)",
                                },
                                "watch": {
                                    "type": "object",
                                    "description": "optional health watch of each switched "
                                    "slot: window_s (1-3600, required), max_error_rate "
                                    "(0-1), max_p95_ratio (>= 1, vs the previous version's "
                                    "p95), min_requests (default 20); a regression rolls "
                                    "back automatically",
                                },
                                "force": {
                                    "type": "boolean",
                                    "default": False,
                                    "description": "override the slots' quality gates "
                                    "(thresholds, production-ready); audited as "
                                    "slot.switch.forced with what was overridden",
                                },
                                "expected": {
                                    "type": "object",
                                    "additionalProperties": {"type": ["string", "null"]},
                                    "description": "optional, per slot of the switch: the "
                                    "version the caller saw it serve (null: nothing), like "
                                    "If-Match; a slot serving something else is refused with "
                                    "409 naming who changed it and when",
                                },
                            },
                        },
                    ]
                },
                "example": {"detector": "yolo-v8-small@1.1", "policy": "walk@3"},
                "examples": {
                    "plain": {"value": {"detector": "yolo-v8-small@1.1", "policy": "walk@3"}},
                    "watched": {
                        "value": {
                            "slots": {"detector": "yolo-v8-small@1.1"},
                            "watch": {
                                "window_s": 30,
                                "max_error_rate": 0.05,
                                "max_p95_ratio": 1.5,
                                "min_requests": 20,
                            },
                        }
                    },
                    "forced": {
                        "value": {"slots": {"detector": "yolo-v8-small@1.1"}, "force": True}
                    },
                    "expected": {
                        "value": {
                            "slots": {"detector": "yolo-v8-small@1.1"},
                            "expected": {"detector": "yolo-v8-small@1.0"},
                        }
                    },
                },
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


def switch_body(request: HttpRequest) -> tuple[dict[str, str | None], dict | None, bool]:
    """(slot -> ref, expected, force) from either body form.

    ``{"slots": {...}, "expected": {...}, "force": true}`` is told from the plain
    ``{slot: ref}`` by ``slots`` holding an object: a plain form's value is a string or
    null, never one.
    """
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise SlotErrors(f"the body is not JSON: {exc}", status=422) from None
    expected, force = None, False
    if isinstance(body, dict) and isinstance(body.get("slots"), dict):
        unknown = sorted(set(body) - {"slots", "expected", "force", "watch"})
        if unknown:
            raise SlotErrors(
                f'unknown field(s) beside "slots": {", ".join(unknown)} '
                "(allowed: expected, force, watch)",
                status=422,
            )
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise SlotErrors(f'"force" must be true or false, got {force!r}', status=422)
        body, expected = body["slots"], body.get("expected")
    if not isinstance(body, dict) or not body:
        raise SlotErrors(
            'send a JSON object of slot -> "name@version", e.g. {"detector": "yolo@1.1"}, '
            'or {"slots": {...}, "expected": {slot: "<the version you saw>"}}',
            status=422,
        )
    # Checked before any query: a name no slot can have (a lone surrogate or a NUL, which
    # PostgreSQL cannot even be asked about) is the caller's mistake, not a server error.
    seen = expected if isinstance(expected, dict) else {}
    for name in [*body, *seen]:
        if not SLUG_RE.fullmatch(name) or len(name) > SLOT_NAME_MAX:
            raise SlotErrors(
                f"{name!r} is not a slot name (1-{SLOT_NAME_MAX} letters, digits, '-' or '_')",
                status=422,
            )
    for ref in [*body.values(), *seen.values()]:
        if isinstance(ref, str) and not _storable(ref):
            raise SlotErrors(
                f"{ref!r} is not a version reference (control or unpaired characters)",
                status=422,
            )
    return body, expected, force


def _storable(text: str) -> bool:
    """Text a database can be asked about: no NUL or other control character, no lone
    surrogate (which cannot be encoded as UTF-8)."""
    return not any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text)


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

    **Lost updates.** The body may be ``{"slots": {slot: ref}, "expected": {slot: ref or
    null}}``: ``expected`` names, per slot of the switch, the version the caller saw it
    serve. A slot that serves something else now is refused (409) naming who changed it
    and when; nothing changes. Every refusal is in the audit trail (outcome ``refused``).

    **Quality gates.** A slot's ``quality_gate`` (thresholds on the version's metrics)
    and ``production`` flag (production-ready versions only) refuse a version that fails
    them with 409 naming the failed gate; ``"force": true`` in the wrapped body form
    overrides them, and the switch is audited as ``slot.switch.forced`` with what it
    overrode.

    **Health watch.** ``"watch": {"window_s": 30, "max_error_rate": 0.05,
    "max_p95_ratio": 1.5, "min_requests": 20}`` in the wrapped body form watches each
    switched slot's new version for ``window_s``: once it has ``min_requests`` requests,
    an error rate above ``max_error_rate`` or a p95 above ``max_p95_ratio`` times the
    previous version's p95 (measured before the switch) rolls the slot back by itself
    (audited ``slot.rollback.auto`` with the figures). A window that passes is audited
    ``slot.watch.healthy``. The answer's ``watches`` names each watch
    (``GET /api/v1/switch/watches/{id}``). Bad thresholds: 422, nothing switches.

    Staff (or users with the change_slot permission) may switch anything they see;
    others only slots whose current and new versions they own.
    """
    assignments, expected, force = switch_body(request)
    watch = watch_of(request)
    if _wants_stream(request):
        return switch_streamed(
            request,
            assignments,
            expected=expected,
            force=force,
            watch=watch,
            done_body=lambda result: SwitchOut.model_validate(result.as_dict()).model_dump(
                mode="json"
            ),
        )
    result, watches = slots_switch_watched(
        assignments=assignments,
        watch=watch,
        actor=request.user,
        actor_label=request_actor_label(request),
        expected=expected,
        force=force,
    )
    return result.as_dict() | ({"watches": watches} if watches else {})


def _wants_stream(request: HttpRequest) -> bool:
    flag = request.GET.get("stream", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    # */* (curl's default) prefers the first: streams only when asked for by name.
    return request.get_preferred_type(["application/json", NDJSON]) == NDJSON
