"""POST /api/v1/slots/{slot}/predict with a bearer token, answered at the ASGI level.

Django's ASGI handler runs its sync middleware and signals in a dozen thread hops per
request (~4 ms on a small machine: more than the model). Robots call predict on every
frame, so their requests skip Django: this middleware checks the token, hands the body
to the worker as bytes and streams nothing back but the worker's answer. It answers
exactly as the ninja operation (modelmgr/api/predict.py) does, which still serves
browser sessions (CSRF-checked) and documents the endpoint in the OpenAPI schema.

Tokens are looked up in the database once and kept for MODELMGR_TOKEN_CACHE_S seconds:
revoking a token (or deactivating its user) takes effect at once in the process that
did it and within that time everywhere else.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from modelmgr.exceptions import ModelmgrError

PREDICT_PATH = re.compile(r"^/api/v1/slots/(?P<slot>[-a-zA-Z0-9_]+)/predict/?$")
_JSON = (b"content-type", b"application/json")

_tokens: dict[str, tuple[float, Any]] = {}
_tokens_lock = threading.Lock()


def tokens_forget(**kwargs) -> None:
    """Signal receiver: a token or user changed here; look every token up again."""
    with _tokens_lock:
        _tokens.clear()


def _audited(instance, created: bool = False, **kwargs) -> None:
    # Token revocation is a queryset update (no post_save of the token): its audit row is
    # the one signal every token or user change sends.
    if created and instance.action.startswith(("token.", "user.")):
        tokens_forget()


def connect_signals() -> None:
    from django.contrib.auth import get_user_model

    from modelmgr.models import ApiToken, AuditEvent

    for model in (ApiToken, get_user_model()):
        uid = f"modelmgr.deploy.fastpath.{model._meta.label}"
        post_save.connect(tokens_forget, sender=model, dispatch_uid=uid + ".save")
        post_delete.connect(tokens_forget, sender=model, dispatch_uid=uid + ".delete")
    post_save.connect(_audited, sender=AuditEvent, dispatch_uid="modelmgr.deploy.fastpath.audit")


def _lookup(token_hash: str) -> tuple[str, list[str]] | None:
    """(token name, scopes) of an active token of an active user, touching last_used_at
    at most once a minute like the API's TokenAuth."""
    from modelmgr.models import ApiToken

    found = ApiToken.objects.active().select_related("user").filter(token_hash=token_hash).first()
    if found is None or not found.user.is_active:
        return None
    now = timezone.now()
    if found.last_used_at is None or (now - found.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return found.name, list(found.scopes)


async def token_check(raw: str) -> tuple[str, list[str]] | None:
    from modelmgr.models import ApiToken

    token_hash = ApiToken.hash_token(raw)
    now = time.monotonic()
    cached = _tokens.get(token_hash)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = await database_sync_to_async(_lookup)(token_hash)
    with _tokens_lock:
        if len(_tokens) > 10_000:
            _tokens.clear()
        _tokens[token_hash] = (now + settings.MODELMGR_TOKEN_CACHE_S, found)
    return found


async def _respond(send, status: int, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(send, status: int, detail: str) -> None:
    headers = [_JSON]
    if status == 503:  # the worker is down: when to try again, as the ninja operation says
        headers.append((b"retry-after", b"5"))
    await _respond(send, status, json.dumps({"detail": detail}).encode(), headers)


def _bearer(headers: list) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def _read_body(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            from modelmgr.deploy.predict import body_limit_check

            body_limit_check(size)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class PredictFastPath:
    """ASGI middleware: bearer-token predict requests here, everything else to ``app``."""

    def __init__(self, app):
        self.app = app
        connect_signals()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            match = PREDICT_PATH.match(scope["path"])
            if match is not None:
                token = _bearer(scope["headers"])
                if token is not None:
                    return await self.predict(match["slot"], token, scope, receive, send)
        return await self.app(scope, receive, send)

    async def predict(self, slot: str, token: str, scope, receive, send) -> None:
        from modelmgr.deploy.predict import PASSED_HEADERS, body_limit_check, slot_predict

        found = await token_check(token)
        if found is None:
            return await _error(send, 401, "invalid or revoked API token")
        name, scopes = found
        if "read" not in scopes:
            return await _error(
                send, 403, f"token {name!r} lacks the 'read' scope needed for predictions"
            )
        headers = {
            key.decode(): value.decode("latin-1")
            for key, value in scope["headers"]
            if key in (b"content-type", b"accept", b"content-length")
        }
        try:
            length = int(headers["content-length"]) if "content-length" in headers else None
            body_limit_check(length)
            body = await _read_body(receive, settings.MODELMGR_PREDICT_MAX_BYTES)
            if body is None:
                return  # the client went away
            answer = await slot_predict(
                slot=slot,
                body=body,
                content_type=headers.get("content-type", ""),
                accept=headers.get("accept", ""),
            )
        except ValueError:
            return await _error(send, 400, "Content-Length is not a number")
        except ModelmgrError as exc:
            return await _error(send, exc.status, exc.detail)
        out = [
            (
                b"content-type",
                answer.headers.get("content-type", "application/json").encode("latin-1"),
            )
        ]
        for header in PASSED_HEADERS:
            if header in answer.headers:
                out.append((header.encode(), answer.headers[header].encode("latin-1")))
        await _respond(send, answer.status_code, answer.content, out)
