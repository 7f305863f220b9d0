"""Small raw-ASGI helpers: read a body, answer JSON or bytes, parse control payloads."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from inference.errors import BodyTooLarge
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
