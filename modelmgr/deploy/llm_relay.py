"""The chat playground's path to a language model: the browser's OpenAI request, relayed
byte for byte to the worker's OpenAI route, and the worker's answer relayed back byte
for byte as it arrives (server-sent events, or JSON; errors with their status).

Why a relay: browsers hold a session on the web origin, not an API token, and the
serving port is another origin. The worker mounts the same OpenAI handler
(inference.serving.openai) on its private control port, where the port itself is the
credential, as for /infer; so the playground's tokens come from exactly the code that
serves robots, and are counted in the same statistics. A browser that hangs up (the
Stop button) closes the relayed connection, and the worker stops generating.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from modelmgr.deploy.fleet import Member
from modelmgr.deploy.spread import spread
from modelmgr.exceptions import ModelmgrError, UploadTooLarge

ROUTES = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
MAX_BODY_BYTES = 1024 * 1024  # a conversation, not a document


class BadRelayRequest(ModelmgrError):
    status = 400


@dataclass
class Relayed:
    status: int
    content_type: str
    retry_after: str | None
    chunks: AsyncIterator[bytes]


def relay_body_check(body: bytes) -> None:
    """What the web checks itself: size, and a JSON object naming a model. Everything
    else (messages, max_tokens, ...) the worker checks, and its 400 comes back as is."""
    if len(body) > MAX_BODY_BYTES:
        raise UploadTooLarge(
            f"request body of {len(body)} bytes exceeds the playground's {MAX_BODY_BYTES} "
            "byte limit"
        )
    try:
        payload = json.loads(body or b"null")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRelayRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRelayRequest("the body must be a JSON object (an OpenAI request)")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise BadRelayRequest("model is required: a slot name or the name@version it serves")


async def llm_relay(*, kind: str, body: bytes) -> Relayed:
    """Send ``body`` to a worker's OpenAI route for ``kind`` (``chat``/``completion``):
    with several workers, the one serving the model's slot with the fewest requests in
    flight (modelmgr.deploy.spread, as for predictions); one that cannot be reached, or
    answers 503 before streaming, hands the conversation to the next."""
    if kind not in ROUTES:
        raise BadRelayRequest(f"kind must be one of: {', '.join(ROUTES)}")
    relay_body_check(body)
    model = json.loads(body)["model"]
    return await spread.first_answer(
        model.partition("@")[0], lambda member, last: _relay_to(member, kind, body, last=last)
    )


async def _relay_to(member: Member, kind: str, body: bytes, *, last: bool) -> Relayed | None:
    client = member.client
    # A client of its own per conversation turn (a playground is a person typing): its
    # connection lives exactly as long as the stream, and closing it is the cancel.
    http = client.stream_client()
    request = http.build_request(
        "POST", ROUTES[kind], content=body, headers={"content-type": "application/json"}
    )
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        await http.aclose()
        raise client.unavailable(exc, client.predict_timeout, doing="generating") from exc
    if response.status_code == 503 and not last:
        await response.aclose()
        await http.aclose()
        return None
    url = member.control_url

    async def chunks() -> AsyncIterator[bytes]:
        # Counted from the first read: a generator never started never runs its
        # finally (say the browser hung up before the first byte), so a count taken
        # before it would stay one too high in this process for good.
        spread.in_flight[url] += 1
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # the worker went away mid-stream: the browser sees the stream end
        finally:
            spread.in_flight[url] -= 1
            # Also on the browser hanging up: closing drops the connection to the worker,
            # which cancels the generation (inference.serving.generation.watch_disconnect).
            with contextlib.suppress(Exception):
                await response.aclose()
                await http.aclose()

    return Relayed(
        status=response.status_code,
        content_type=response.headers.get("content-type", "application/json"),
        retry_after=response.headers.get("retry-after"),
        chunks=chunks(),
    )
