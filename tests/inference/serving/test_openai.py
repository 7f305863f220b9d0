"""The OpenAI-compatible API on the serving port, with the official ``openai`` client
against a real worker subprocess serving tiny real Llama models."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from tests.inference.serving.conftest import LLM_ENV, token
from tests.inference.support import llm_version, make_slot
from tests.inference.test_server_switch import switch
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
HELLO = [{"role": "user", "content": "hello"}]


def client_for(worker, raw: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=worker.serve_url + "/v1", api_key=raw, max_retries=0, timeout=60)


def test_models_chat_and_completions_with_usage(llm_worker, owner):
    client = client_for(llm_worker, token(owner))
    listed = [m.id for m in client.models.list()]
    # The slots first, then the registry versions a request may load on demand.
    assert sorted(listed[:2]) == ["chat", "plain"] and "tiny-llama@1" in listed[2:]
    reply = client.chat.completions.create(
        model="chat", messages=HELLO, max_tokens=5, temperature=0
    )
    assert reply.model == "tiny-llama@1" and reply.object == "chat.completion"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    usage = reply.usage
    assert usage.prompt_tokens > 0 and 1 <= usage.completion_tokens <= 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == 5
    # name@version names the slot that serves it; completions need no template.
    done = client.completions.create(
        model="plain@1", prompt="hello world", max_tokens=7, temperature=0
    )
    assert done.model == "plain@1" and done.usage.completion_tokens <= 7
    assert done.choices[0].finish_reason in ("length", "stop")


def test_streaming_gives_the_same_text_as_the_whole_answer(llm_worker, owner):
    client = client_for(llm_worker, token(owner))
    whole = client.chat.completions.create(
        model="chat", messages=HELLO, max_tokens=12, temperature=0
    )
    chunks = list(
        client.chat.completions.create(
            model="chat", messages=HELLO, max_tokens=12, temperature=0, stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    pieces = list(
        client.completions.create(
            model="plain", prompt="hello", max_tokens=9, temperature=0, stream=True
        )
    )
    whole_text = (
        client.completions.create(model="plain", prompt="hello", max_tokens=9, temperature=0)
        .choices[0]
        .text
    )
    assert "".join(p.choices[0].text for p in pieces) == whole_text


def test_stop_cuts_the_text_and_seed_repeats_a_sample(llm_worker, owner):
    client = client_for(llm_worker, token(owner))
    full = client.completions.create(
        model="plain", prompt="the quick", max_tokens=30, temperature=0
    )
    text = full.choices[0].text
    stop = next(
        text[i : i + 2]
        for i in range(1, len(text) - 2)
        if "\ufffd" not in text[i : i + 2] and text[i : i + 2].strip()
    )
    cut = client.completions.create(
        model="plain", prompt="the quick", max_tokens=30, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < full.usage.completion_tokens
    sampled = [
        client.completions.create(
            model="plain", prompt="hello", max_tokens=15, temperature=1.0, seed=7
        )
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def test_chat_without_a_template_and_a_token_for_another_slot_are_refused(llm_worker, owner):
    client = client_for(llm_worker, token(owner))
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="plain", messages=HELLO, max_tokens=3)
    assert refused.value.status_code == 400
    assert "no chat template" in refused.value.body["message"]
    with pytest.raises(openai.NotFoundError, match="'nope' is not served here: no slot"):
        client.chat.completions.create(model="nope", messages=HELLO)
    limited = client_for(llm_worker, token(owner, slots=("plain",), name="plain-only"))
    with pytest.raises(openai.PermissionDeniedError) as forbidden:
        limited.chat.completions.create(model="chat", messages=HELLO, max_tokens=3)
    assert forbidden.value.status_code == 403 and "chat" in forbidden.value.body["message"]
    assert [m.id for m in limited.models.list()] == ["plain"]  # no on-demand versions
    raw = httpx.post(
        llm_worker.serve_url + "/v1/completions",
        json={"model": "plain", "prompt": "hi", "max_tokens": 0},
        headers={"Authorization": f"Bearer {token(owner, name='raw')}"},
    )
    assert raw.status_code == 400
    body = raw.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["detail"] == body["error"]["message"] == "max_tokens must be a positive integer"
    anonymous = httpx.get(llm_worker.serve_url + "/v1/models")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["message"]


def test_a_client_that_hangs_up_frees_the_slot(llms, owner):
    env = {**LLM_ENV, "MODELMGR_LLM_NUM_PARALLEL": "1", "MODELMGR_LLM_MAX_QUEUE": "0"}
    with start_worker(env=env) as worker:
        worker.wait_ready()
        raw = token(owner)
        client = client_for(worker, raw)
        stream = client.completions.create(
            model="plain", prompt="hello", max_tokens=240, temperature=0, stream=True
        )
        next(iter(stream))
        # The one place is taken and no one may wait: 503 with Retry-After.
        busy = httpx.post(
            worker.serve_url + "/v1/completions",
            json={"model": "plain", "prompt": "hi", "max_tokens": 1},
            headers={"Authorization": f"Bearer {raw}"},
        )
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "MODELMGR_LLM_NUM_PARALLEL" in busy.json()["error"]["message"]
        stream.close()
        hung_up = time.monotonic()
        while True:
            try:
                answer = client.completions.create(model="plain", prompt="hi", max_tokens=1)
                break
            except openai.InternalServerError:
                assert time.monotonic() - hung_up < 30, "the slot stayed taken"
                time.sleep(0.05)
        assert answer.usage.completion_tokens == 1
        freed_after = time.monotonic() - hung_up
        # Generating the 240 tokens would take longer than the cancelled stream did.
        whole = time.monotonic()
        client.completions.create(model="plain", prompt="hello", max_tokens=240, temperature=0)
        assert freed_after < (time.monotonic() - whole) / 2


def test_switching_the_llm_slot_under_streaming_load_fails_no_stream(owner, llama_files, tmp_path):
    v1 = llm_version(owner, llama_files, tmp_path, name="sw", version="1", seed=0)
    v2 = llm_version(owner, llama_files, tmp_path, name="sw", version="2", seed=1)
    make_slot("chat", v1)
    with start_worker(env=LLM_ENV) as worker, worker.client() as control:
        worker.wait_ready()
        client = client_for(worker, token(owner))
        stop = threading.Event()
        seen: set[str] = set()
        failures: list[str] = []
        done = [0]

        def load() -> None:
            while not stop.is_set():
                try:
                    chunks = list(
                        client.chat.completions.create(
                            model="chat", messages=HELLO, max_tokens=24, stream=True
                        )
                    )
                    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
                    seen.add(chunks[0].model)
                    done[0] += 1
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    failures.append(repr(exc))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for target in (v2, v1, v2):
                time.sleep(0.5)
                events = switch(control, {"chat": target.pk}, switch_id=f"to-{target.pk}")
                assert events[-1]["ok"] is True, events[-1]
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert failures == []
        assert seen == {"sw@1", "sw@2"} and done[0] >= 8


def test_tensor_routes_on_an_llm_slot_answer_4xx_naming_the_api_to_use(llm_worker, owner):
    headers = {"Authorization": f"Bearer {token(owner)}"}
    with httpx.Client(base_url=llm_worker.serve_url, headers=headers, timeout=30) as client:
        predict = client.post("/api/v1/slots/chat/predict", json={"inputs": {}})
        assert 400 <= predict.status_code < 500, predict.text
        assert "/v1/chat/completions" in predict.json()["detail"]
        assert client.get("/v2/models/chat").status_code == 200
