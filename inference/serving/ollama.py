"""Ollama-compatible routes on the serving port, for language models.

``GET /api/tags`` (what can be used: llm slots and available language-model versions),
``GET /api/ps`` (loaded language models: size, size in VRAM, context, keep-alive
expiry), ``POST /api/show``, ``POST /api/generate`` and ``POST /api/chat`` (NDJSON
streamed by default, ``"stream": false`` for one answer; ``options`` ``num_predict``,
``temperature``, ``top_p``, ``stop``, ``seed``; ``keep_alive``), ``POST /api/pull``
(inference.serving.ollama_pull) and ``DELETE /api/delete``
(inference.serving.ollama_delete). A model is a slot, the ``name@version`` a slot
serves, or a registry version loaded on demand (inference.serving.ondemand). Listing
rules: inference.serving.ollama_listing; keep-alive: inference.keep_alive.

Ollama's load/unload idiom works: /api/generate with an empty prompt (or /api/chat with
no messages) loads the model and answers ``done_reason: "load"``; with ``keep_alive: 0``
it unloads it (``"unload"``) unless a slot serves it or it is pinned: the database is
the desired state, and such a model stays loaded (the answer's ``note`` says why).
Errors are ``{"error": "...", "detail": "..."}``.
A slot serving a provided version (modelmgr.providers) is proxied to its provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

from inference.asgi import BadRequest, json_payload, predict_body_limit_check, read_body, send_json
from inference.keep_alive import expiry, keep_alive_set
from inference.runtimes.llm import CausalLM
from inference.serving import ollama_delete, ollama_pull
from inference.serving.auth import CHALLENGE, TokenCache
from inference.serving.generation import Generation, LlmSession, watch_disconnect
from inference.serving.guard import answered
from inference.serving.ollama_listing import ps, show_loaded, tags
from inference.serving.ollama_show import show_version
from inference.serving.ondemand import Target, release_target, resolve_target, served_slot
from inference.serving.openai import MethodNotAllowed, generation_request
from inference.serving.provided import ProvidedGeneration, provided_call
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError
from modelmgr.keep_alive import keep_alive_seconds

PATHS = {
    "/api/tags",
    "/api/ps",
    "/api/show",
    "/api/generate",
    "/api/chat",
    "/api/pull",
    "/api/delete",
}
NDJSON = [(b"content-type", b"application/x-ndjson")]


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def send_error(send, status: int, detail: str) -> None:
    """Ollama's error shape (``error``), with ``detail`` like every modelmgr answer."""
    headers = [CHALLENGE] if status == 401 else []
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send_json(send, status, {"error": detail, "detail": detail}, headers)


class Ollama:
    def __init__(self, worker: Worker, tokens: TokenCache):
        self.worker = worker
        self.tokens = tokens

    async def handle(self, scope, receive, send) -> None:
        await answered(self.route, scope, receive, send, send_error)

    async def route(self, scope, receive, send) -> None:
        path, method = scope["path"].rstrip("/"), scope["method"]
        grant = await self.tokens.authorize(scope["headers"])
        if path in ("/api/tags", "/api/ps"):
            if method != "GET":
                raise MethodNotAllowed(f"use GET for {path}")
            if path == "/api/ps":
                return await send_json(send, 200, {"models": ps(self.worker, grant)})
            return await send_json(send, 200, {"models": await tags(self.worker, grant)})
        if path == "/api/delete":
            if method != "DELETE":
                raise MethodNotAllowed("use DELETE for /api/delete")
            return await ollama_delete.delete(self.worker, grant, receive, send)
        if method != "POST":
            raise MethodNotAllowed(f"use POST for {path}")
        predict_body_limit_check(scope["headers"])
        payload = json_payload(await read_body(receive))
        if path == "/api/pull":
            return await ollama_pull.pull(grant, payload, receive, send)
        name = payload.get("model") or payload.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(
                "model is required: a slot, the name@version it serves, or a registry "
                "version (name@version, or name for its newest)"
            )
        if path == "/api/show":
            return await send_json(send, 200, await self.show(grant, name))
        keep_alive = None
        if payload.get("keep_alive") is not None:
            keep_alive = keep_alive_seconds(payload["keep_alive"])
        chat = path == "/api/chat"
        target = await resolve_target(self.worker, grant, name)
        if _is_load_only(payload, chat=chat):
            return await self.load_only(send, target, name, keep_alive, chat=chat, payload=payload)
        entry = None
        try:
            async with LlmSession(self.worker, target.slot, held=target.entry) as session:
                entry = session.entry
                shaped = openai_shaped(payload, chat=chat)
                if isinstance(session.model, CausalLM):
                    request, stop = generation_request(
                        shaped,
                        session.model,
                        chat=chat,
                        default_max=None,
                        default_temperature=0.8,  # Ollama's default
                    )
                    generation = session.begin(request, stop)
                else:  # run by a provider: proxied
                    generation = session.adopt(
                        ProvidedGeneration(session.model, provided_call(shaped, chat=chat))
                    )
                cancel = generation.request.cancel
                watcher = asyncio.ensure_future(watch_disconnect(receive, cancel))
                try:
                    await self.answer(
                        send,
                        generation,
                        name,
                        chat=chat,
                        stream=payload.get("stream", True) is not False,
                    )
                finally:
                    watcher.cancel()
        finally:
            if entry is not None:
                self.keep(entry, keep_alive)

    def keep(self, entry, keep_alive: float | None) -> bool:
        """After a request: its keep_alive becomes the model's; 0 unloads it now (unless
        a slot serves it or it is pinned). True when it was unloaded."""
        keep_alive_set(entry, keep_alive)
        return keep_alive == 0 and self.worker.pool.expire(entry, time.time())

    async def load_only(self, send, target: Target, name: str, keep_alive, *, chat, payload):
        """Ollama's load/unload idiom: no prompt, only (maybe) a keep_alive."""
        pool = self.worker.pool
        try:
            entry = target.entry or self.worker.router.acquire(target.slot)
        except BaseException:
            release_target(self.worker, target)
            raise
        pool.release(entry)
        unloaded = self.keep(entry, keep_alive)
        answer = {"model": name, "created_at": now_iso()}
        answer.update(
            {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
        )
        answer.update(done=True, done_reason="unload" if keep_alive == 0 else "load")
        if keep_alive == 0 and not unloaded:
            _, kept_by = expiry(entry, served=self.worker.router.served_ids())
            answer["note"] = f"{entry.ref} stays loaded: " + (
                "a slot serves it (the database is the desired state)"
                if kept_by == "slot"
                else "it is pinned"
                if kept_by == "pinned"
                else "a request is using it; it is unloaded when that ends"
            )
        if payload.get("stream", True) is not False:
            await send({"type": "http.response.start", "status": 200, "headers": NDJSON})
            await send({"type": "http.response.body", "body": json.dumps(answer).encode() + b"\n"})
            return
        await send_json(send, 200, answer)

    async def show(self, grant, name: str) -> dict:
        slot = served_slot(self.worker, name)
        if slot:
            grant.check_slot(slot)
            return show_loaded(self.worker.router.table[slot].entry, f"served by slot {slot}")
        return await show_version(self.worker, grant, name)

    async def answer(self, send, generation: Generation, name: str, *, chat: bool, stream: bool):
        started = time.perf_counter_ns()

        def part(text: str) -> dict:
            if chat:
                return {"message": {"role": "assistant", "content": text}}
            return {"response": text}

        def final(text: str) -> dict:
            elapsed = time.perf_counter_ns() - started
            first = generation.first_token_at
            # Until the first token: the prompt's evaluation; after it, the generation.
            prompt_ns = min(elapsed, max(0, int(first * 1e9) - started)) if first else elapsed
            return {
                "model": name,
                "created_at": now_iso(),
                **part(text),
                "done": True,
                "done_reason": generation.finish_reason,
                "total_duration": elapsed,
                "load_duration": 0,
                "prompt_eval_count": generation.prompt_tokens,
                "prompt_eval_duration": prompt_ns,
                "eval_count": generation.completion_tokens,
                "eval_duration": elapsed - prompt_ns,
            }

        if not stream:
            async with contextlib.aclosing(generation.pieces()) as pieces:
                async for _ in pieces:
                    pass
            return await send_json(send, 200, final(generation.text))
        await generation.ready()
        await send({"type": "http.response.start", "status": 200, "headers": NDJSON})
        try:
            async with contextlib.aclosing(generation.pieces()) as pieces:
                async for piece in pieces:
                    line = {"model": name, "created_at": now_iso(), **part(piece), "done": False}
                    await send(
                        {
                            "type": "http.response.body",
                            "body": json.dumps(line).encode() + b"\n",
                            "more_body": True,
                        }
                    )
        except ModelmgrError as exc:
            # Too late for a status: Ollama's error line (its client raises ResponseError).
            line = {"error": exc.detail, "detail": exc.detail}
            await send({"type": "http.response.body", "body": json.dumps(line).encode() + b"\n"})
            raise
        await send({"type": "http.response.body", "body": json.dumps(final("")).encode() + b"\n"})


def _is_load_only(payload: dict, *, chat: bool) -> bool:
    """No prompt (generate) or no messages (chat): Ollama's load/unload request."""
    if chat:
        return not payload.get("messages")
    return not payload.get("prompt") and not payload.get("system") and not payload.get("images")


def openai_shaped(payload: dict, *, chat: bool) -> dict:
    """Ollama's request as the OpenAI one generation_request checks."""
    options = payload.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object")
    shaped: dict = {}
    if chat:
        shaped["messages"] = payload.get("messages")
    else:
        prompt = payload.get("prompt", "")
        system = payload.get("system")
        shaped["prompt"] = f"{system}\n{prompt}" if isinstance(system, str) and system else prompt
    predict = options.get("num_predict")
    if predict is not None and predict != -1:
        shaped["max_tokens"] = predict
    for key in ("temperature", "top_p", "stop", "seed"):
        if options.get(key) is not None:
            shaped[key] = options[key]
    return shaped
