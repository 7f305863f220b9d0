"""Bearer tokens on the serving port: the web API's tokens (hashed, ``read`` scope, maybe
limited to some slots), looked up in the database and cached for MODELMGR_TOKEN_CACHE_S.

A lookup runs in a thread of its own (the ORM never runs on the event loop); requests
that arrive with the same uncached token while it runs wait for that one lookup. A
token in use is looked up again in the background during the last fifth of its cache
time, while its requests go on with the cached answer, which is still within its time:
so a busy robot's requests never all wait for a thread and a query when the entry
expires (on a loaded machine that stalled every in-flight request of the token for
tens of ms). A revoked token or a deactivated user stops working within the cache
time, unknown tokens included (a miss is cached too, so a bad token cannot make every
request a query).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from inference.worker import db_pass
from modelmgr.exceptions import Forbidden, ModelmgrError
from modelmgr.models import ApiToken

MAX_CACHED = 10_000
REFRESH_AHEAD = 0.2  # the last fraction of an entry's time in which a use refreshes it
CHALLENGE = (b"www-authenticate", b'Bearer realm="modelmgr"')


class Unauthorized(ModelmgrError):
    status = 401


@dataclass(frozen=True)
class Grant:
    """What a valid token may do (a frozen copy: no ORM object on the event loop)."""

    name: str
    scopes: tuple[str, ...]
    slots: tuple[str, ...]  # empty = every slot
    user_id: int | None = None  # whose registry the token reaches (Ollama pull/delete)
    token_id: int | None = None

    def check_slot(self, slot: str) -> None:
        refusal = ApiToken.slot_refusal_of(self.name, self.slots, slot)
        if refusal:
            raise Forbidden(refusal)

    def check_write(self, doing: str) -> None:
        """The ``write`` scope, as the web API asks for any change (403 naming it)."""
        if "write" not in self.scopes:
            raise Forbidden(f"token {self.name!r} lacks the 'write' scope needed to {doing}")


def _lookup(raw: str) -> Grant | None:
    from modelmgr.registry.tokens import token_for_use

    with db_pass():
        token = token_for_use(raw)
        if token is None:
            return None
        return Grant(
            token.name,
            tuple(token.scopes),
            tuple(token.slots or ()),
            user_id=token.user_id,
            token_id=token.pk,
        )


class TokenCache:
    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Grant | None]] = {}
        self._pending: dict[str, asyncio.Future] = {}
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="auth")

    def close(self) -> None:
        self._threads.shutdown(wait=False)

    async def grant(self, raw: str) -> Grant | None:
        now = time.monotonic()
        cached = self._cache.get(raw)
        if cached is not None and cached[0] > now:
            if cached[0] - now < self.ttl_s * REFRESH_AHEAD and raw not in self._pending:
                self._lookup(raw)  # in the background: this request keeps the valid entry
            return cached[1]
        pending = self._pending.get(raw)
        if pending is None:
            pending = self._lookup(raw)
        return await asyncio.shield(pending)

    def refreshing(self, raw: str) -> bool:
        """Whether a lookup of ``raw`` is in flight."""
        return raw in self._pending

    def _lookup(self, raw: str) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = self._pending[raw] = loop.run_in_executor(self._threads, _lookup, raw)
        future.add_done_callback(lambda done: self._store(raw, done))
        return future

    def _store(self, raw: str, done: asyncio.Future) -> None:
        del self._pending[raw]
        # A failed lookup is not cached: the requests that awaited it get its error; a
        # failed background refresh leaves the entry to expire and be looked up again.
        if done.cancelled() or done.exception() is not None:
            return
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[raw] = (time.monotonic() + self.ttl_s, done.result())

    async def authorize(self, headers, *, slot: str | None = None) -> Grant:
        """The grant of the request's bearer token with the ``read`` scope (and ``slot``).

        Unauthorized (401) without a valid token, Forbidden (403) naming the missing scope
        or slot."""
        raw = bearer(headers)
        if raw is None:
            raise Unauthorized("send 'Authorization: Bearer <token>' (an API token)")
        grant = await self.grant(raw)
        if grant is None:
            raise Unauthorized("invalid or revoked API token")
        if "read" not in grant.scopes:
            raise Forbidden(f"token {grant.name!r} lacks the 'read' scope needed for inference")
        if slot is not None:
            grant.check_slot(slot)
        return grant


def bearer(headers) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class PrivatePortAccess:
    """The private control port's stand-in for TokenCache: the port itself is the
    credential (loopback or a unix socket, unauthenticated like its /infer), so every
    request gets one grant for every slot. The web process relays its logged-in
    browsers' playground through it (modelmgr.deploy.llm_relay)."""

    GRANT = Grant("the web process (private port)", ("read",), ())

    async def authorize(self, headers, *, slot: str | None = None) -> Grant:
        return self.GRANT
