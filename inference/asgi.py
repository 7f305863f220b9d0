"""Small raw-ASGI helpers: read a body, answer JSON or bytes, parse control payloads."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from inference.errors import BodyTooLarge, InvalidInput
from modelmgr.exceptions import ModelmgrError

MAX_BODY = 512 * 1024 * 1024
JSON_HEADERS = [(b"content-type", b"application/json")]


class BadRequest(ModelmgrError):
    status = 400


async def read_body(receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks, size = [body], len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge(f"the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def predict_body_limit_check(headers) -> None:
    """413 for a declared body over MODELMGR_PREDICT_MAX_BYTES, before reading any of it
    (the serving port's limit, as the web API's)."""
    limit = settings.MODELMGR_PREDICT_MAX_BYTES
    for name, value in headers:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge(
                f"request body of {int(value)} bytes exceeds the {limit} byte limit "
                "for predictions (MODELMGR_PREDICT_MAX_BYTES)"
            )


async def send_bytes(send, status: int, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, payload: Any, headers: list | None = None) -> None:
    await send_bytes(send, status, json.dumps(payload).encode(), [*JSON_HEADERS, *(headers or [])])


def json_payload(body: bytes) -> dict:
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    return payload


def version_id_of(payload: dict) -> int:
    value = payload.get("version_id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest("version_id must be an integer")
    return value


def switch_id_of(payload: dict) -> str:
    switch_id = payload.get("switch_id")
    if not isinstance(switch_id, str) or not switch_id:
        raise BadRequest("switch_id must be a non-empty string")
    return switch_id


def switch_request(payload: dict) -> tuple[str, dict, dict]:
    """(switch_id, slots, shares) of a /switch or /prepare body; 400/422 when malformed."""
    switch_id = payload.get("switch_id", "")
    slots = payload.get("slots")
    shares = payload.get("shares") or {}
    if not isinstance(switch_id, str):
        raise BadRequest("switch_id must be a string")
    if not isinstance(shares, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
        for v in shares.values()
    ):
        raise InvalidInput('shares must be an object {"slot": share from 0 to 1}')
    if not isinstance(slots, dict) or not slots:
        raise InvalidInput('slots must be a non-empty object {"slot": version_id}')
    for name, version_id in slots.items():
        if not name or (
            version_id is not None
            and (not isinstance(version_id, int) or isinstance(version_id, bool))
        ):
            raise InvalidInput(f"slot {name!r}: the version must be an integer id or null")
    return switch_id, slots, shares
