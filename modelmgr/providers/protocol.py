"""The two provider protocols, as data: where to ask, and how to read what comes back.

- ``openai``: an OpenAI-compatible API (vLLM, llama.cpp's server, a hosted API, another
  modelmgr worker). The base URL is the one the ``openai`` client takes, ending in
  ``/v1`` (added when the URL has no path). Models: ``GET {base}/models``; generation:
  ``POST {base}/chat/completions`` and ``{base}/completions`` streamed as server-sent
  events.
- ``ollama``: an Ollama server (``http://host:11434``). Models: ``GET {base}/api/tags``;
  generation: ``POST {base}/api/chat`` and ``{base}/api/generate`` streamed as NDJSON.

Both are sent the API key as ``Authorization: Bearer``. Plain functions on plain data,
shared by the web process (discovery) and the worker (generation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

OPENAI, OLLAMA = "openai", "ollama"
KINDS = (OPENAI, OLLAMA)


def normalize_base(kind: str, url: str) -> str:
    """The base URL without a trailing slash; an OpenAI one without a path gets /v1."""
    url = url.strip().rstrip("/")
    if kind == OPENAI:
        scheme, _, rest = url.partition("://")
        if "/" not in rest:
            url += "/v1"
    return url


def models_path(kind: str) -> str:
    return "/models" if kind == OPENAI else "/api/tags"


def generate_path(kind: str, *, chat: bool) -> str:
    if kind == OPENAI:
        return "/chat/completions" if chat else "/completions"
    return "/api/chat" if chat else "/api/generate"


def headers(api_key: str) -> dict[str, str]:
    base = {"Accept": "application/json", "User-Agent": "modelmgr-provider/1"}
    if api_key:
        base["Authorization"] = f"Bearer {api_key}"
    return base


@dataclass(frozen=True)
class RemoteModel:
    """One model a provider lists."""

    name: str
    context_length: int | None = None
    size_bytes: int | None = None
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    digest: str = ""
    extra: dict = field(default_factory=dict)


def parse_models(kind: str, body: Any) -> list[RemoteModel]:
    """The models of a listing; raises ValueError when it is not the protocol's shape."""
    if kind == OPENAI:
        rows = body.get("data") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise ValueError('expected {"data": [{"id": ...}, ...]} from GET /models')
        models = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                continue
            context = row.get("context_length") or row.get("max_model_len")
            models.append(
                RemoteModel(
                    name=row["id"],
                    context_length=context if isinstance(context, int) else None,
                    extra={"owned_by": str(row.get("owned_by") or "")},
                )
            )
        return models
    rows = body.get("models") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ValueError('expected {"models": [{"name": ...}, ...]} from GET /api/tags')
    models = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        name = row.get("model") or row.get("name")
        if not isinstance(name, str) or not name:
            continue
        details = row.get("details") if isinstance(row.get("details"), dict) else {}
        size = row.get("size")
        models.append(
            RemoteModel(
                name=name,
                size_bytes=size if isinstance(size, int) else None,
                family=str(details.get("family") or ""),
                parameter_size=str(details.get("parameter_size") or ""),
                quantization=str(details.get("quantization_level") or ""),
                digest=str(row.get("digest") or ""),
            )
        )
    return models


def error_message(body: bytes) -> str:
    """The message of an error answer: OpenAI's error.message, Ollama's error, a detail."""
    text = body[:2000].decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if data.get("detail"):
            return str(data["detail"])[:300]
    return text[:300]


@dataclass
class Call:
    """One generation request, checked, in the terms both protocols share."""

    chat: bool
    messages: list[dict] | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


def request_body(kind: str, model: str, call: Call) -> dict:
    """What to POST to ``generate_path``: always streamed (the worker re-streams it or
    gathers it), so a slow provider is seen token by token, not after the whole answer."""
    if kind == OPENAI:
        body: dict[str, Any] = {
            "model": model,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if call.chat:
            body["messages"] = call.messages
        else:
            body["prompt"] = call.prompt
        for key in ("max_tokens", "temperature", "top_p", "seed"):
            if getattr(call, key) is not None:
                body[key] = getattr(call, key)
        if call.stop:
            body["stop"] = call.stop
        return body
    options: dict[str, Any] = {}
    if call.max_tokens is not None:
        options["num_predict"] = call.max_tokens
    for key in ("temperature", "top_p", "seed"):
        if getattr(call, key) is not None:
            options[key] = getattr(call, key)
    if call.stop:
        options["stop"] = call.stop
    body = {"model": model, "stream": True, "options": options}
    if call.chat:
        body["messages"] = call.messages
    else:
        body.update(prompt=call.prompt, raw=True)  # a completion: no template added
    return body


@dataclass
class Event:
    """What one line of the stream says: new text, and (at the end) counts and reason."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done: bool = False
    error: str = ""


def parse_line(kind: str, line: str, *, chat: bool) -> Event | None:
    """One line of the provider's stream (an SSE ``data:`` line or an NDJSON line), or
    None for a line that carries nothing (comments, blank lines, keep-alives)."""
    line = line.strip()
    if not line:
        return None
    if kind == OPENAI:
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            return Event(done=True)
        chunk = _json(data)
        if "error" in chunk:
            return Event(error=error_message(data.encode()))
        event = Event()
        choices = chunk.get("choices") or []
        if choices and isinstance(choices[0], dict):
            choice = choices[0]
            if chat:
                delta = choice.get("delta") or {}
                event.text = str(delta.get("content") or "")
            else:
                event.text = str(choice.get("text") or "")
            event.finish_reason = choice.get("finish_reason")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            event.prompt_tokens = usage.get("prompt_tokens")
            event.completion_tokens = usage.get("completion_tokens")
        return event
    chunk = _json(line)
    if "error" in chunk:
        return Event(error=error_message(line.encode()))
    if chat:
        text = str((chunk.get("message") or {}).get("content") or "")
    else:
        text = str(chunk.get("response") or "")
    event = Event(text=text)
    if chunk.get("done"):
        event.done = True
        event.finish_reason = chunk.get("done_reason") or "stop"
        event.prompt_tokens = chunk.get("prompt_eval_count")
        event.completion_tokens = chunk.get("eval_count")
    return event


def _json(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"the provider sent a line that is not JSON: {text[:120]!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the provider sent a line that is not an object: {text[:120]!r}")
    return data
