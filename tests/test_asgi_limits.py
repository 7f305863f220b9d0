"""modelmgr.asgi_limits: the ASGI-level body cap, for servers other than our web process."""

from __future__ import annotations

import asyncio
import json

from modelmgr.asgi_limits import MULTIPART_ALLOWANCE_BYTES, RejectOversizeBody


def _call(length: int) -> tuple[list[dict], bool]:
    reached = []

    async def app(scope, receive, send):
        reached.append(scope)

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", str(length).encode())]}
    asyncio.run(RejectOversizeBody(app)(scope, None, send))
    return sent, bool(reached)


def test_a_declared_length_over_the_cap_and_its_allowance_is_413(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 1000
    over = 1000 + MULTIPART_ALLOWANCE_BYTES + 1
    sent, reached = _call(over)
    assert not reached
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {
        "detail": f"request body of {over} bytes exceeds the 1000 byte upload limit"
    }


def test_a_declared_length_within_the_allowance_reaches_the_application(settings):
    settings.MODELMGR_MAX_UPLOAD_BYTES = 1000
    sent, reached = _call(1000 + MULTIPART_ALLOWANCE_BYTES)
    assert reached and sent == []
