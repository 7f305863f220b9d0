"""Generation by a provider (inference.runtimes.provider), in the shape of ``Generation``.

The OpenAI and Ollama routes use a ``ProvidedGeneration`` exactly as a local
``Generation``: inside the same ``LlmSession`` (gate, drain on switch, usage and error
counts), iterating ``pieces()`` and reading ``text``, ``finish_reason`` and ``usage``.

1. ``provided_call`` checks the OpenAI-shaped parameters (400 naming what is wrong)
   without a tokenizer: the provider tokenizes.
2. ``pieces`` reads the provider's stream in a task of its own and yields each piece of
   text as it arrives. The client hanging up (``watch_disconnect`` sets
   ``request.cancel``) or the consumer stopping early cancels that task, which closes
   the connection to the provider, which stops its generation.
3. A provider failure (down, slow, key refused, an error mid-stream) is raised as its
   502/504 ``ProviderError``; the session records it as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from inference.asgi import BadRequest
from inference.runtimes.provider import ProvidedLM
from inference.serving.generation import Generation
from modelmgr.providers.protocol import Call


class HangUp:
    """The cancel flag of a provided generation: set from the event loop, awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass
class ProvidedRequest:
    call: Call
    max_tokens: int | None
    cancel: HangUp = field(default_factory=HangUp)


def _number(payload: dict, key: str, low: float, high: float) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def provided_call(payload: dict, *, chat: bool) -> Call:
    """The OpenAI parameters of ``payload``, checked as ``generation_request`` does."""
    call = Call(chat=chat)
    if chat:
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list of {role, content}")
        for message in messages:
            if (
                not isinstance(message, dict)
                or not isinstance(message.get("role"), str)
                or not isinstance(message.get("content"), str)
            ):
                raise BadRequest("each message needs a string role and a string content")
        call.messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    else:
        prompt = payload.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string (one prompt per request)")
        call.prompt = prompt
    if payload.get("n", 1) != 1:
        raise BadRequest("n must be 1: one choice per request")
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequest("max_tokens must be a positive integer")
    call.max_tokens = limit
    stop = payload.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop is None:
        stop = []
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop must be a string or a list of up to 4 strings")
    call.stop = [s for s in stop if s]
    seed = payload.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("seed must be an integer")
    call.seed = seed
    call.temperature = _number(payload, "temperature", 0.0, 2.0)
    call.top_p = _number(payload, "top_p", 0.0, 1.0)
    return call


class ProvidedGeneration(Generation):
    def __init__(self, model: ProvidedLM, call: Call):
        self.model = model
        self.call = call
        self.request = ProvidedRequest(call=call, max_tokens=call.max_tokens)
        self.stop = call.stop
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason = "stop"
        self.text = ""
        self._queue: asyncio.Queue = asyncio.Queue()
        self._reader: asyncio.Future | None = None
        self._early: list[tuple[str, object]] = []
        # Timings for the usage record (Generation.tokens): the provider's pieces as they
        # arrive here; ``produced`` becomes its token count at the end.
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.produced = 0

    async def _read(self) -> None:
        """The provider's events into the queue (a task: cancelling it closes the
        connection)."""
        try:
            async with contextlib.aclosing(self.model.stream(self.call)) as events:
                async for event in events:
                    self._queue.put_nowait(("event", event))
            self._queue.put_nowait(("end", None))
        except Exception as exc:
            self._queue.put_nowait(("error", exc))

    async def _next(self) -> tuple[str, object] | None:
        """The next item, or None when the client hung up first."""
        if self._early:
            return self._early.pop(0)
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        getter = asyncio.ensure_future(self._queue.get())
        hangup = asyncio.ensure_future(self.request.cancel.event.wait())
        try:
            done, _ = await asyncio.wait({getter, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
        if getter not in done:
            getter.cancel()
            return None
        return getter.result()

    async def _close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def ready(self) -> None:
        """Wait for the provider's first answer before a stream's headers are sent, so
        that a provider that is down, slow or refuses the key is still a 502/504 status
        (raised here), not a stream cut short."""
        item = await self._next()
        if item is None:
            return await self._close()
        if item[0] == "error":
            await self._close()
            raise item[1]
        self._early.append(item)

    async def pieces(self) -> AsyncIterator[str]:
        counted = 0
        try:
            while True:
                item = await self._next()
                if item is None:
                    return  # the client hung up: the finally closes the connection
                kind, event = item
                if kind == "error":
                    raise event
                if kind == "end":
                    break
                if event.prompt_tokens is not None:
                    self.prompt_tokens = int(event.prompt_tokens)
                if event.completion_tokens is not None:
                    self.completion_tokens = int(event.completion_tokens)
                if event.finish_reason:
                    self.finish_reason = str(event.finish_reason)
                if event.text:
                    counted += 1
                    now = time.perf_counter()
                    if self.first_token_at is None:
                        self.first_token_at = now
                    self.last_token_at = now
                    self.text += event.text
                    yield event.text
                if event.done:
                    break
            if not self.completion_tokens:
                self.completion_tokens = counted  # no usage from the provider: its pieces
            self.produced = self.completion_tokens
        finally:
            await self._close()
