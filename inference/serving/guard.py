"""Errors of a streaming route, answered the way its API's clients read them.

Before the response has begun, an error becomes that API's error answer (``refuse``);
once a stream is under way there is no status left to send, so a domain error ends the
stream quietly and anything else propagates (the server closes the connection).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from inference.pool import short_error
from modelmgr.exceptions import ModelmgrError

Refuse = Callable[..., Awaitable[None]]  # (send, status, detail)


async def answered(route, scope, receive, send, refuse: Refuse) -> None:
    started = False

    async def tracked(message):
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await route(scope, receive, tracked)
    except ModelmgrError as exc:
        if not started:
            await refuse(send, exc.status, exc.detail)
    except Exception as exc:
        if started:
            raise
        await refuse(send, 500, f"internal error: {short_error(exc)}")
