"""OpenAI-compatible routes on the serving port, for the slots that serve language models.

- ``GET /v1/models``: the served llm slots (those the token may use), then the registry's
  language-model versions a request may load on demand (as Ollama's ``/v1/models``).
- ``POST /v1/chat/completions``: messages through the tokenizer's chat template (a version
  without one is refused with 400; completions still work).
- ``POST /v1/completions``: a prompt.

Both take ``stream`` (server-sent events ``data: {...}`` then ``data: [DONE]``),
``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``, and answer ``usage``. The
``model`` field names a slot, the ``name@version`` a slot serves, or a registry version
no slot serves, loaded on demand and kept for its keep-alive (the same resolution as the
Ollama routes: inference.serving.ondemand). Errors are OpenAI's
``{"error": {"message", "type", "code"}}`` plus ``detail``, as everywhere on the port.

A slot serving a provided version (modelmgr.providers) is proxied: the same request
goes to the provider, its tokens stream back through the same answers; the provider
being down, slow or refusing its key is a 502/504 naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

from inference.asgi import BadRequest, json_payload, predict_body_limit_check, read_body, send_json
from inference.runtimes.llm import CausalLM, GenerationRequest
from inference.serving.auth import CHALLENGE, TokenCache
from inference.serving.generation import (
    Generation,
    LlmSession,
    llm_slots,
    watch_disconnect,
)
from inference.serving.guard import answered
from inference.serving.ondemand import resolve_target, usable_versions
from inference.serving.provided import ProvidedGeneration, provided_call
from inference.worker import Worker
from modelmgr.exceptions import Forbidden, ModelmgrError

PATHS = {"/v1/models", "/v1/chat/completions", "/v1/completions"}
ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    503: "server_overloaded",
}
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


PLACEHOLDER = "\x00piece\x00"  # no generated text is encoded as this JSON string


class MethodNotAllowed(ModelmgrError):
    status = 405


def openai_error_body(status: int, detail: str) -> dict:
    kind = ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": detail, "type": kind, "code": status}, "detail": detail}


async def send_error(send, status: int, detail: str) -> None:
    headers = [CHALLENGE] if status == 401 else []
    if status in (429, 503):
        headers.append((b"retry-after", b"1"))
    await send_json(send, status, openai_error_body(status, detail), headers)


class OpenAI:
    def __init__(self, worker: Worker, tokens: TokenCache):
        self.worker = worker
        self.tokens = tokens

    async def handle(self, scope, receive, send) -> None:
        await answered(self.route, scope, receive, send, send_error)

    async def route(self, scope, receive, send) -> None:
        path, method = scope["path"].rstrip("/"), scope["method"]
        grant = await self.tokens.authorize(scope["headers"])
        if path == "/v1/models":
            if method != "GET":
                raise MethodNotAllowed("use GET for /v1/models")
            return await self.models(grant, send)
        if method != "POST":
            raise MethodNotAllowed(f"use POST for {path}")
        predict_body_limit_check(scope["headers"])
        payload = json_payload(await read_body(receive))
        chat = path == "/v1/chat/completions"
        name = payload.get("model")
        if not isinstance(name, str) or not name:
            raise BadRequest("model is required: a slot name or a name@version")
        target = await resolve_target(self.worker, grant, name)
        async with LlmSession(self.worker, target.slot, held=target.entry) as session:
            model = session.model
            if isinstance(model, CausalLM):
                request, stop = generation_request(payload, model, chat=chat)
                generation = session.begin(request, stop)
            else:  # run by a provider: proxied
                generation = session.adopt(
                    ProvidedGeneration(model, provided_call(payload, chat=chat))
                )
            watcher = asyncio.ensure_future(watch_disconnect(receive, generation.request.cancel))
            try:
                if payload.get("stream"):
                    await self.stream(send, generation, session.entry.ref, chat=chat)
                else:
                    await self.whole(send, generation, session.entry.ref, chat=chat)
            finally:
                watcher.cancel()

    async def models(self, grant, send) -> None:
        data = []
        for slot, entry in sorted(llm_slots(self.worker).items()):
            try:
                grant.check_slot(slot)
            except Forbidden:
                continue
            data.append(
                {
                    "id": slot,
                    "object": "model",
                    "created": int(entry.loaded_at),
                    "owned_by": "modelmgr",
                    "version": entry.ref,
                    "context_length": entry.model.context_length,
                    "chat_template": entry.model.has_chat_template,
                }
            )
        versions = await asyncio.get_running_loop().run_in_executor(None, usable_versions, grant)
        for version in versions:
            llm = (version.inspection or {}).get("llm") or {}
            data.append(
                {
                    "id": version.ref,
                    "object": "model",
                    "created": int(version.created_at.timestamp()),
                    "owned_by": "modelmgr",
                    "version": version.ref,
                    "context_length": llm.get("context_length"),
                    "chat_template": llm.get("chat_template"),
                }
            )
        await send_json(send, 200, {"object": "list", "data": data})

    async def whole(self, send, generation: Generation, ref: str, *, chat: bool) -> None:
        async with contextlib.aclosing(generation.pieces()) as pieces:
            async for _ in pieces:
                pass
        text = generation.text
        choice: dict = {"index": 0, "finish_reason": generation.finish_reason}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice.update(text=text, logprobs=None)
        await send_json(
            send,
            200,
            {
                "id": new_id(chat),
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": ref,
                "choices": [choice],
                "usage": generation.usage,
            },
        )

    async def stream(self, send, generation: Generation, ref: str, *, chat: bool) -> None:
        ident, created = new_id(chat), int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, finish: str | None, first: bool = False) -> bytes:
            choice: dict = {"index": 0, "finish_reason": finish}
            if chat:
                delta = {"role": "assistant", "content": ""} if first else {}
                if piece is not None:
                    delta["content"] = piece
                choice["delta"] = delta
            else:
                choice.update(text=piece or "", logprobs=None)
            body = {"id": ident, "object": kind, "created": created, "model": ref}
            body["choices"] = [choice]
            if finish is not None:
                body["usage"] = generation.usage
            return b"data: " + json.dumps(body).encode() + b"\n\n"

        await generation.ready()
        # A piece's chunk is the same JSON but for the text: encode the rest once, and
        # per piece only its string.
        head, tail = chunk(PLACEHOLDER, None).split(json.dumps(PLACEHOLDER).encode())

        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        if chat:
            await send(
                {"type": "http.response.body", "body": chunk(None, None, True), "more_body": True}
            )
        try:
            async with contextlib.aclosing(generation.pieces()) as pieces:
                # A client that hung up cancels the generation (watch_disconnect); what it
                # still yields goes nowhere (uvicorn drops sends after a disconnect).
                async for piece in pieces:
                    body = head + json.dumps(piece).encode() + tail
                    await send({"type": "http.response.body", "body": body, "more_body": True})
        except ModelmgrError as exc:
            # Too late for a status (a provider failing mid-stream): an error event,
            # which the openai client raises as an APIError.
            event = openai_error_body(exc.status, exc.detail)
            await send({"type": "http.response.body", "body": sse(event)})
            raise
        final = chunk(None, generation.finish_reason) + b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": final})


def sse(body: dict) -> bytes:
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]


def _number(payload: dict, key: str, default: float, low: float, high: float) -> float:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def generation_request(
    payload: dict,
    model: CausalLM,
    *,
    chat: bool,
    default_max: int | None = 16,
    default_temperature: float = 1.0,
) -> tuple[GenerationRequest, list[str]]:
    """Check the OpenAI parameters and tokenize the prompt (400 naming what is wrong)."""
    if chat:
        if not model.has_chat_template:
            raise BadRequest(
                "this model's tokenizer has no chat template, so it cannot chat; use "
                "/v1/completions with a prompt, or upload a version whose tokenizer has one"
            )
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
        prompt_ids = model.chat_ids(
            [{"role": m["role"], "content": m["content"]} for m in messages]
        )
    else:
        prompt = payload.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string (one prompt per request)")
        prompt_ids = model.encode(prompt)
    if payload.get("n", 1) != 1:
        raise BadRequest("n must be 1: one choice per request")
    room = model.context_length - len(prompt_ids)
    if room < 1:
        raise BadRequest(
            f"the prompt is {len(prompt_ids)} tokens; the context is {model.context_length}"
        )
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if limit is None:
        # OpenAI's completions default is 16 tokens; chat (and Ollama) fill the context.
        limit = room if chat or default_max is None else min(default_max, room)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadRequest("max_tokens must be a positive integer")
    if limit > room:
        raise BadRequest(
            f"max_tokens {limit} + the prompt's {len(prompt_ids)} tokens exceed the "
            f"context of {model.context_length}"
        )
    stop = payload.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop is None:
        stop = []
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
        raise BadRequest("stop must be a string or a list of up to 4 strings")
    seed = payload.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("seed must be an integer")
    request = GenerationRequest(
        prompt_ids=prompt_ids,
        max_tokens=limit,
        temperature=_number(payload, "temperature", default_temperature, 0.0, 2.0),
        top_p=_number(payload, "top_p", 1.0, 0.0, 1.0) or 1.0,
        seed=seed,
    )
    return request, stop
