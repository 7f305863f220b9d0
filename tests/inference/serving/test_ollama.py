"""The Ollama-compatible API on the serving port, with the official ``ollama`` client
against a real worker subprocess serving tiny real Llama models."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from tests.inference.serving.conftest import token
from tests.inference.serving.test_openai import HELLO

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def client_for(worker, raw: str) -> ollama.Client:
    return ollama.Client(host=worker.serve_url, headers={"Authorization": f"Bearer {raw}"})


def test_tags_ps_and_show(llm_worker, owner):
    client = client_for(llm_worker, token(owner))
    # The slots, then the registry's language-model versions (usable on demand).
    assert [m.model for m in client.list().models] == ["chat", "plain", "plain@1", "tiny-llama@1"]
    running = {m.model: m for m in client.ps().models}
    assert set(running) == {"chat", "plain"}
    assert running["chat"].size > 0 and running["chat"].size_vram == 0  # on the CPU
    assert running["chat"].context_length == 256
    shown = client.show("chat")
    assert "chat" in shown.capabilities and shown.template
    assert shown.details.family == "llama"
    assert "chat" not in client.show("plain").capabilities


def test_generate_and_chat_stream_ndjson_by_default(llm_worker, owner):
    client = client_for(llm_worker, token(owner))
    options = {"num_predict": 10, "temperature": 0}
    whole = client.generate(model="plain", prompt="hello", options=options, stream=False)
    assert whole.done and whole.done_reason in ("stop", "length")
    assert 1 <= whole.eval_count <= 10 and whole.prompt_eval_count > 0
    assert 0 < whole.prompt_eval_duration and 0 < whole.eval_duration < whole.total_duration
    parts = list(client.generate(model="plain", prompt="hello", options=options, stream=True))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == whole.response
    chat = list(client.chat(model="chat", messages=HELLO, options=options, stream=True))
    assert chat[-1].done and chat[-1].eval_count <= 10
    text = "".join(c.message.content for c in chat)
    again = client.chat(model="tiny-llama@1", messages=HELLO, options=options, stream=False)
    assert again.message.content == text and again.message.role == "assistant"
    # Without "stream", Ollama streams: NDJSON lines, the last one done.
    raw = httpx.post(
        llm_worker.serve_url + "/api/generate",
        json={"model": "plain", "prompt": "hello", "options": options},
        headers={"Authorization": f"Bearer {token(owner, name='raw')}"},
    )
    assert raw.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in raw.text.splitlines()]
    assert lines[-1]["done"] is True and "".join(x["response"] for x in lines) == whole.response


def test_errors_come_back_as_ollama_errors(llm_worker, owner):
    client = client_for(llm_worker, token(owner))
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model="plain", messages=HELLO, stream=False)
    assert refused.value.status_code == 400 and "no chat template" in refused.value.error
    with pytest.raises(ollama.ResponseError) as missing:
        client.generate(model="nope", prompt="hi", stream=False)
    assert missing.value.status_code == 404
    limited = client_for(llm_worker, token(owner, slots=("plain",), name="plain-only"))
    with pytest.raises(ollama.ResponseError) as forbidden:
        limited.generate(model="chat", prompt="hi", stream=False)
    assert forbidden.value.status_code == 403
    assert [m.model for m in limited.list().models] == ["plain"]
