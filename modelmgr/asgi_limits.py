"""Refuse a body over the upload cap from its Content-Length, before Django reads it.

Django's ASGI handler spools the whole body before any view runs; without this an
oversize upload would be written to disk in full only to be refused afterwards.
"""

from __future__ import annotations

import json

from django.conf import settings


class RejectOversizeBody:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = _content_length(scope)
            limit = settings.MODELMGR_MAX_UPLOAD_BYTES
            # multipart framing adds a little; the exact per-file cap is enforced while streaming
            if length is not None and length > limit + 1024 * 1024:
                body = json.dumps(
                    {
                        "detail": (
                            f"request body of {length} bytes exceeds the {limit} byte upload limit"
                        )
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
