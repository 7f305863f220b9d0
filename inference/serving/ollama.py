"""Ollama-compatible routes on the serving port, for the slots that serve language models.

``GET /api/tags`` (the served llm slots), ``GET /api/ps`` (loaded language models: size,
size in VRAM, context), ``POST /api/show``, ``POST /api/generate`` and ``POST /api/chat``
(NDJSON streamed by default, ``"stream": false`` for one answer; ``options``
``num_predict``, ``temperature``, ``top_p``, ``stop``, ``seed``). A model is a slot or
the ``name@version`` a slot serves. Errors are ``{"error": "...", "detail": "..."}``.
Not here: /api/pull, /api/delete and keep_alive (models stay loaded as slots say).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

from inference.asgi import BadRequest, json_payload, predict_body_limit_check, read_body, send_json
from inference.runtimes.llm import CausalLM
from inference.serving.auth import CHALLENGE, TokenCache
from inference.serving.generation import (
    Generation,
    LlmSession,
    llm_slots,
    resolve_slot,
    watch_disconnect,
)
from inference.serving.guard import answered
from inference.serving.openai import MethodNotAllowed, generation_request
from inference.worker import Worker
from modelmgr.exceptions import Forbidden

PATHS = {"/api/tags", "/api/ps", "/api/show", "/api/generate", "/api/chat"}
NDJSON = [(b"content-type", b"application/x-ndjson")]


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def details(model: CausalLM) -> dict:
    config = model.config
    return {
        "parent_model": "",
        "format": "safetensors",
        "family": str(config.get("model_type") or ""),
        "families": [str(config.get("model_type") or "")],
        "parameter_size": "",
        "quantization_level": model.dtype.upper(),
    }


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
            return await send_json(send, 200, {"models": self.listing(grant, path == "/api/ps")})
        if method != "POST":
            raise MethodNotAllowed(f"use POST for {path}")
        predict_body_limit_check(scope["headers"])
        payload = json_payload(await read_body(receive))
        name = payload.get("model") or payload.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("model is required: a slot name or the name@version it serves")
        slot = resolve_slot(self.worker, name)
        grant.check_slot(slot)
        if path == "/api/show":
            return await self.show(slot, send)
        chat = path == "/api/chat"
        async with LlmSession(self.worker, slot) as session:
            request, stop = generation_request(
                openai_shaped(payload, chat=chat),
                session.model,
                chat=chat,
                default_max=None,
                default_temperature=0.8,  # Ollama's default
            )
            generation = Generation(session.model, request, stop)
            watcher = asyncio.ensure_future(watch_disconnect(receive, request.cancel))
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

    def listing(self, grant, running: bool) -> list[dict]:
        models = []
        for slot, entry in sorted(llm_slots(self.worker).items()):
            try:
                grant.check_slot(slot)
            except Forbidden:
                continue
            model = entry.model
            row = {
                "name": slot,
                "model": slot,
                "modified_at": datetime.fromtimestamp(entry.loaded_at, UTC).isoformat(),
                "size": entry.memory_bytes,
                "digest": entry.spec.content_hash,
                "details": details(model),
            }
            if running:
                row.update(
                    size_vram=entry.memory_bytes if model.device.startswith("cuda") else 0,
                    context_length=model.context_length,
                    expires_at=None,  # no keep-alive: served models stay loaded
                )
            models.append(row)
        return models

    async def show(self, slot: str, send) -> None:
        entry = self.worker.router.table[slot].entry
        model = entry.model
        if not isinstance(model, CausalLM):
            raise BadRequest(f"slot {slot} serves {entry.ref}, which is not a language model")
        template = getattr(model.tokenizer, "chat_template", None) or ""
        info = {f"{k}": v for k, v in model.config.items() if isinstance(v, (int, float, str))}
        await send_json(
            send,
            200,
            {
                "modelfile": f"# {entry.ref} served by slot {slot}",
                "parameters": "",
                "template": template,
                "details": details(model),
                "model_info": {**info, "context_length": model.context_length},
                "capabilities": ["completion"] + (["chat"] if template else []),
                "modified_at": datetime.fromtimestamp(entry.loaded_at, UTC).isoformat(),
            },
        )

    async def answer(self, send, generation: Generation, name: str, *, chat: bool, stream: bool):
        started = time.perf_counter_ns()

        def part(text: str) -> dict:
            if chat:
                return {"message": {"role": "assistant", "content": text}}
            return {"response": text}

        def final(text: str) -> dict:
            elapsed = time.perf_counter_ns() - started
            return {
                "model": name,
                "created_at": now_iso(),
                **part(text),
                "done": True,
                "done_reason": generation.finish_reason,
                "total_duration": elapsed,
                "load_duration": 0,
                "prompt_eval_count": generation.prompt_tokens,
                "eval_count": generation.completion_tokens,
                "eval_duration": elapsed,
            }

        if not stream:
            async with contextlib.aclosing(generation.pieces()) as pieces:
                async for _ in pieces:
                    pass
            return await send_json(send, 200, final(generation.text))
        await send({"type": "http.response.start", "status": 200, "headers": NDJSON})
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
        await send({"type": "http.response.body", "body": json.dumps(final("")).encode() + b"\n"})


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
