"""The request-body cap: one rule, enforced as early as each server allows.

Under the real web process (``modelmgr.web_server``) twisted refuses an oversize body
while it arrives, before any of it is stored. ``RejectOversizeBody`` is the same rule
for whatever else runs the ASGI application (the test client, another ASGI server): it
refuses a declared Content-Length before Django's handler spools the body.
"""

from __future__ import annotations

import json

from django.conf import settings

# Multipart framing (boundaries, part headers, form fields) adds a little to the file;
# the exact per-file cap is enforced while streaming (modelmgr.ingest.upload).
MULTIPART_ALLOWANCE_BYTES = 1024 * 1024


def request_body_limit() -> int:
    """The most bytes a request body may have: the upload cap plus the multipart allowance."""
    return settings.MODELMGR_MAX_UPLOAD_BYTES + MULTIPART_ALLOWANCE_BYTES


def oversize_body_json(length: int, *, at_least: bool = False) -> bytes:
    """The 413 body for a request body of ``length`` bytes (``at_least``: still arriving)."""
    size = f"at least {length}" if at_least else str(length)
    limit = settings.MODELMGR_MAX_UPLOAD_BYTES
    detail = f"request body of {size} bytes exceeds the {limit} byte upload limit"
    return json.dumps({"detail": detail}).encode()


class RejectOversizeBody:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = _content_length(scope)
            if length is not None and length > request_body_limit():
                body = oversize_body_json(length)
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
