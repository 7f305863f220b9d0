"""Language-model statistics end to end: the official ``openai`` client streams from a
real worker serving tiny real Llama models, the worker flushes its counters, and
/api/v1/stats and the model page show the tokens and timings the client saw."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.inference.serving.conftest import LLM_ENV, token
from tests.inference.serving.test_openai import HELLO, client_for
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
STATS_ENV = {
    **LLM_ENV,
    "MODELMGR_STATS_FLUSH_S": "0.2",
    "MODELMGR_LLM_NUM_PARALLEL": "1",
    "MODELMGR_LLM_MAX_QUEUE": "0",
}


def stats_groups(api, wanted: dict[str, int]) -> dict[str, dict]:
    """/api/v1/stats groups by slot, once each slot counts ``wanted`` requests (the worker
    flushes every 0.2 s here)."""
    deadline = time.monotonic() + 30
    while True:
        groups = {g["slot"]: g for g in api.get("/api/v1/stats?since=1h").json()["groups"]}
        counts = {slot: groups.get(slot, {}).get("count", 0) for slot in wanted}
        if counts == wanted or time.monotonic() > deadline:
            return groups
        time.sleep(0.2)


def test_stats_show_the_tokens_and_timings_the_client_saw(llms, owner, api):
    with start_worker(env=STATS_ENV) as worker:
        worker.wait_ready()
        raw = token(owner, name="streams")
        client = client_for(worker, raw)
        usages, walls = [], []
        for max_tokens in (6, 9, 12):
            started = time.monotonic()
            chunks = list(
                client.chat.completions.create(
                    model="chat",
                    messages=HELLO,
                    max_tokens=max_tokens,
                    temperature=0,
                    stream=True,
                )
            )
            walls.append(time.monotonic() - started)
            usages.append(chunks[-1].usage)
        started = time.monotonic()
        usages.append(
            client.chat.completions.create(
                model="chat", messages=HELLO, max_tokens=5, temperature=0
            ).usage
        )
        walls.append(time.monotonic() - started)

        # Slot plain: one long stream; meanwhile a request finds no place (503, an
        # error) and one asks for no tokens at all (400, refused as the client's mistake).
        started = time.monotonic()
        stream = client.completions.create(
            model="plain", prompt="hello", max_tokens=200, temperature=0, stream=True
        )
        parts = iter(stream)
        first = [next(parts)]
        busy = httpx.post(
            worker.serve_url + "/v1/completions",
            json={"model": "plain", "prompt": "hi", "max_tokens": 1},
            headers={"Authorization": f"Bearer {raw}"},
        )
        assert busy.status_code == 503
        long_usage = (first + list(parts))[-1].usage
        long_wall = time.monotonic() - started
        refused = httpx.post(
            worker.serve_url + "/v1/completions",
            json={"model": "plain", "prompt": "hi", "max_tokens": 0},
            headers={"Authorization": f"Bearer {raw}"},
        )
        assert refused.status_code == 400
        groups = stats_groups(api, {"chat": 4, "plain": 3})

    chat = groups["chat"]
    assert chat["ref"] == "tiny-llama@1"
    assert (chat["count"], chat["errors"], chat["refused"], chat["success_rate"]) == (4, 0, 0, 1)
    assert chat["prompt_tokens"] == sum(u.prompt_tokens for u in usages)
    assert chat["completion_tokens"] == sum(u.completion_tokens for u in usages)
    assert chat["generations"] == 4
    # Time to first token: present, within each request's time, percentiles in order.
    assert 0 < chat["ttft_p50_ms"] <= chat["ttft_p95_ms"] <= max(walls) * 1000
    assert chat["ttft_p50_ms"] <= chat["p50_ms"] and chat["ttft_p95_ms"] <= chat["p95_ms"]
    assert 0 < chat["ttft_mean_ms"] <= chat["mean_ms"]
    if any(u.completion_tokens >= 2 for u in usages):
        assert 0 < chat["tokens_per_s_p50"] <= chat["tokens_per_s_p95"]

    plain = groups["plain"]
    assert (plain["count"], plain["errors"], plain["refused"]) == (3, 1, 1)
    assert plain["success_rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert plain["prompt_tokens"] == long_usage.prompt_tokens
    assert plain["completion_tokens"] == long_usage.completion_tokens
    assert plain["generations"] == 1  # neither the busy nor the refused one generated
    assert long_usage.completion_tokens >= 2, "the long stream ended at its first token"
    speed = plain["tokens_per_s_p50"]
    assert speed == plain["tokens_per_s_p95"] > 0  # one sample: both are it
    # Its decoding (tokens after the first at that speed) fit in the client's wait.
    assert (long_usage.completion_tokens - 1) / speed <= long_wall
    assert plain["ttft_p50_ms"] / 1000 + (long_usage.completion_tokens - 1) / speed <= long_wall

    totals = api.get("/api/v1/stats?since=1h&slot=chat").json()["totals"]
    assert totals["completion_tokens"] == chat["completion_tokens"]
    series = api.get("/api/v1/stats?since=1h&model=tiny-llama").json()["series"]
    assert sum(m["completion_tokens"] for m in series) == chat["completion_tokens"]
    assert all(m["ttft_p50_ms"] is not None for m in series)

    api.force_login(owner)
    page = api.get("/models/tiny-llama/versions/1/usage").content.decode()  # its section
    assert "Generation" in page and "Time to first token" in page and "Tokens/s" in page
    assert f">{chat['completion_tokens']}<" in page
