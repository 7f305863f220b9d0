"""A slot served by a provider model: the first worker (the gateway) proxies generation
to a second, separate modelmgr worker (the provider, tests/providerproc.py), streamed
back through its OpenAI and Ollama routes; read with the official clients."""

from __future__ import annotations

import time

import ollama
import openai
import pytest

from modelmgr.models import Slot, UsageBucket
from tests.conftest import make_token
from tests.inference.serving.conftest import LLM_ENV
from tests.inference.support import eventually, make_slot
from tests.providerproc import start_provider
from tests.providers.conftest import allow, register
from tests.providers.test_provider_discovery import frozen
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
HELLO = [{"role": "user", "content": "hello"}]
REF = "lab-chat@remote"


def gateway_env(entry: str) -> dict:
    return {
        **LLM_ENV,
        "MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS": entry,
        "MODELMGR_PROVIDER_TIMEOUT_S": "3",
        "MODELMGR_STATS_FLUSH_S": "0.2",
    }


def openai_client(url: str, raw: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=raw, max_retries=0, timeout=60)


def serve_provided(staff_api, settings, provider, *, key=None, switch=True):
    """Register + discover the provider, a slot ``llm``, a gateway worker switched to the
    provided model through /api/v1/switch (unless not ``switch``); returns the gateway."""
    entry = allow(settings, provider.serve_port)
    assert register(staff_api, provider, key=key).status_code == 201
    assert staff_api.post("/api/v1/providers/lab/discover").status_code == 200
    make_slot("llm", task="llm")
    gateway = start_worker(env=gateway_env(entry))
    try:
        gateway.wait_ready()
        settings.MODELMGR_WORKER_URL = gateway.url
        if switch:
            switched = staff_api.post(
                "/api/v1/switch", {"llm": REF}, content_type="application/json"
            )
            assert switched.status_code == 200, switched.content
    except BaseException:
        gateway.stop()
        raise
    return gateway


def test_slot_serves_a_provider_model_through_the_openai_and_ollama_routes(
    staff_api, staff, settings, provider
):
    with serve_provided(staff_api, settings, provider) as gateway:
        assert Slot.objects.get(name="llm").active_version.ref == REF
        client = openai_client(gateway.serve_url + "/v1", make_token(staff, scopes=("read",)))
        direct = openai_client(provider.openai_url, provider.home.token)
        # The slot first, then what the gateway can serve on demand: the provided models.
        listed = [m.id for m in client.models.list()]
        assert listed[0] == "llm" and REF in listed[1:]

        asked = {"messages": HELLO, "max_tokens": 8, "temperature": 0, "seed": 1}
        expected = direct.chat.completions.create(model="chat", **asked)
        reply = client.chat.completions.create(model="llm", **asked)
        assert reply.model == REF
        assert reply.choices[0].message.content == expected.choices[0].message.content
        assert reply.usage.prompt_tokens == expected.usage.prompt_tokens > 0
        assert reply.usage.completion_tokens == expected.usage.completion_tokens

        chunks = list(client.chat.completions.create(model=REF, stream=True, **asked))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
        assert "".join(pieces) == expected.choices[0].message.content
        assert chunks[-1].choices[0].finish_reason == expected.choices[0].finish_reason

        done = client.completions.create(model="llm", prompt="hello world", max_tokens=5)
        assert done.usage.completion_tokens <= 5
        # The provider's own refusal of a parameter is the client's 400, with its words.
        with pytest.raises(openai.BadRequestError) as too_long:
            client.chat.completions.create(model="llm", messages=HELLO, max_tokens=1000)
        assert "provider lab" in too_long.value.message and "context" in too_long.value.message

        robot = ollama.Client(
            host=gateway.serve_url,
            headers={"Authorization": f"Bearer {make_token(staff, scopes=('read',), name='o')}"},
        )
        streamed = list(
            robot.chat(
                model="llm",
                messages=HELLO,
                stream=True,
                options={"temperature": 0, "num_predict": 8},
            )
        )
        assert streamed[-1].done
        text = "".join(part.message.content or "" for part in streamed)
        assert text == expected.choices[0].message.content

        # The same model through an Ollama-kind provider (native /api/chat, NDJSON).
        assert register(staff_api, provider, name="olla", kind="ollama").status_code == 201
        assert staff_api.post("/api/v1/providers/olla/discover").status_code == 200
        make_slot("llm2", task="llm")
        switched = staff_api.post(
            "/api/v1/switch", {"llm2": "olla-chat@remote"}, content_type="application/json"
        )
        assert switched.status_code == 200, switched.content
        via_ollama = client.chat.completions.create(model="llm2", **asked)
        assert via_ollama.choices[0].message.content == expected.choices[0].message.content
        assert via_ollama.usage.completion_tokens == expected.usage.completion_tokens
        streamed_ollama = list(client.chat.completions.create(model="llm2", stream=True, **asked))
        assert (
            "".join(c.choices[0].delta.content or "" for c in streamed_ollama)
            == expected.choices[0].message.content
        )
        plain = client.completions.create(model="llm2", prompt="hello world", max_tokens=4)
        assert plain.usage.completion_tokens <= 4

        # Cannot delete what serves.
        assert staff_api.delete("/api/v1/providers/lab").status_code == 409
        removed = staff_api.delete("/api/v1/models/lab-chat/versions/remote")
        assert removed.status_code == 409

        # A provider that stops answering: 504 naming it, then serving again.
        with frozen(provider):
            started = time.monotonic()
            with pytest.raises(openai.APIStatusError) as slow:
                client.chat.completions.create(model="llm", **asked)
            assert time.monotonic() - started < 30
        assert slow.value.status_code == 504
        assert "provider lab" in slow.value.message and "did not answer within 3 s" in (
            slow.value.message
        )
        # ... and one that stops mid-stream: the stream ends with an error event.
        stream = iter(
            client.completions.create(
                model="llm", prompt="hello", max_tokens=240, temperature=0, stream=True
            )
        )
        next(stream)
        with frozen(provider), pytest.raises(openai.APIError) as cut:
            for _ in stream:
                pass
        assert "did not answer within 3 s" in cut.value.message
        again = client.chat.completions.create(model="llm", **asked)
        assert again.choices[0].message.content == expected.choices[0].message.content
        eventually(
            lambda: (
                sum(b.errors for b in UsageBucket.objects.filter(slot_name="llm")) >= 1
                and sum(b.count for b in UsageBucket.objects.filter(slot_name="llm")) >= 5
            ),
            limit=10,
        )


def hang_up_frees_the_provider(client, provider) -> None:
    """A client of the gateway that hangs up mid-stream stops the provider's generation:
    its one place (MODELMGR_LLM_NUM_PARALLEL=1, no queue) is free again long before the
    whole generation would have ended."""
    direct = openai_client(provider.openai_url, provider.home.token)
    stream = client.completions.create(
        model="llm", prompt="hello", max_tokens=240, temperature=0, stream=True
    )
    next(iter(stream))
    with pytest.raises(openai.APIStatusError) as busy:
        direct.completions.create(model="chat", prompt="hi", max_tokens=1)
    assert busy.value.status_code == 503
    stream.close()
    hung_up = time.monotonic()
    while True:
        try:
            direct.completions.create(model="chat", prompt="hi", max_tokens=1)
            break
        except openai.APIStatusError:
            assert time.monotonic() - hung_up < 30, "the provider kept generating"
            time.sleep(0.05)
    freed_after = time.monotonic() - hung_up
    whole = time.monotonic()
    direct.completions.create(model="chat", prompt="hello", max_tokens=240, temperature=0)
    assert freed_after < (time.monotonic() - whole) / 2


def test_hang_up_wrong_key_and_provider_down(staff_api, staff, settings, provider_home):
    one_at_a_time = {"MODELMGR_LLM_NUM_PARALLEL": "1", "MODELMGR_LLM_MAX_QUEUE": "0"}
    with start_provider(provider_home, env=one_at_a_time) as provider:
        with serve_provided(staff_api, settings, provider, key=provider_home.spare) as gateway:
            client = openai_client(gateway.serve_url + "/v1", make_token(staff, scopes=("read",)))
            assert client.chat.completions.create(model="llm", messages=HELLO, max_tokens=3)
            hang_up_frees_the_provider(client, provider)
            provider.revoke("spare")
            time.sleep(0.5)  # the provider's token cache (MODELMGR_TOKEN_CACHE_S=0.2)
            with pytest.raises(openai.APIStatusError) as refused:
                client.chat.completions.create(model="llm", messages=HELLO, max_tokens=3)
            assert refused.value.status_code == 502
            assert "refused the API key (401" in refused.value.message
            with pytest.raises(openai.APIStatusError) as refused_stream:
                list(
                    client.chat.completions.create(
                        model="llm", messages=HELLO, max_tokens=3, stream=True
                    )
                )
            assert refused_stream.value.status_code == 502
            # An administrator fixes the key: the slot uses it at once, no switch needed.
            fixed = staff_api.patch(
                "/api/v1/providers/lab",
                {"api_key": provider_home.token},
                content_type="application/json",
            )
            assert fixed.status_code == 200
            assert client.chat.completions.create(model="llm", messages=HELLO, max_tokens=3)

            provider.terminate()
            with pytest.raises(openai.APIStatusError) as down:
                client.chat.completions.create(model="llm", messages=HELLO, max_tokens=3)
            assert down.value.status_code == 502
            assert "provider lab" in down.value.message and "unreachable" in down.value.message
            eventually(
                lambda: sum(b.errors for b in UsageBucket.objects.filter(slot_name="llm")) >= 3,
                limit=10,
            )


def test_switching_to_an_unreachable_provider_model_changes_nothing(
    staff_api, staff, settings, provider_home
):
    with start_provider(provider_home) as provider:
        with serve_provided(staff_api, settings, provider, switch=False) as gateway:
            provider.terminate()
            response = staff_api.post(
                "/api/v1/switch", {"llm": REF}, content_type="application/json"
            )
            assert response.status_code == 409, response.content
            assert "provider lab" in response.json()["detail"]
            assert "unreachable" in response.json()["detail"]
            assert Slot.objects.get(name="llm").active_version is None
            assert gateway.running
