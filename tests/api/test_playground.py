"""The playground relay (POST /api/v1/playground/...): a logged-in browser's OpenAI request
goes to the worker's OpenAI route and its server-sent events come back as they are made.

Real processes: the daphne web process and a worker serving tiny real Llama models."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.inference.serving.conftest import LLM_ENV, llm_worker, llms  # noqa: F401
from tests.webproc import WebProcess
from tests.workerproc import start_worker, worker_environment

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
CHAT = "/api/v1/playground/chat/completions"
COMPLETION = "/api/v1/playground/completions"
HELLO = [{"role": "user", "content": "hello"}]


def web_for(worker) -> WebProcess:
    return WebProcess(env={**worker_environment(), "MODELMGR_WORKER_URL": worker.url}).start()


def logged_in(web: WebProcess, username: str = "olivia", password: str = "pw-olivia"):
    """An httpx client holding a session and the CSRF token, as a browser tab does."""
    client = httpx.Client(base_url=web.url, timeout=60)
    client.get("/login/")
    csrf = client.cookies["csrftoken"]
    answer = client.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": web.url + "/login/"},
    )
    assert answer.status_code in (200, 302) and "sessionid" in client.cookies
    return client, client.cookies["csrftoken"]


def events(lines) -> list:
    """The JSON payloads of an SSE stream's ``data:`` lines, up to [DONE]."""
    out = []
    for line in lines:
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            out.append("[DONE]")
            break
        out.append(json.loads(line[len("data: ") :]))
    return out


@pytest.fixture
def web(llm_worker):  # noqa: F811
    web = web_for(llm_worker)
    try:
        yield web
    finally:
        web.stop()


def test_a_session_streams_a_chat_reply_as_server_sent_events(web, owner):
    client, csrf = logged_in(web)
    body = {"model": "chat", "messages": HELLO, "max_tokens": 12, "stream": True}
    with client.stream("POST", CHAT, json=body, headers={"X-CSRFToken": csrf}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = events(response.iter_lines())
    assert chunks[-1] == "[DONE]"
    assert chunks[0]["object"] == "chat.completion.chunk" and chunks[0]["model"] == "tiny-llama@1"
    last = chunks[-2]
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert 1 <= last["usage"]["completion_tokens"] <= 12
    # The same text as the worker's own non-streamed answer, relayed as it is.
    whole = client.post(
        CHAT, json={**body, "stream": False, "temperature": 0}, headers={"X-CSRFToken": csrf}
    )
    assert whole.status_code == 200 and whole.json()["object"] == "chat.completion"
    # A version without a chat template: plain completion through the other route.
    plain = client.post(
        COMPLETION,
        json={"model": "plain", "prompt": "hello", "max_tokens": 5},
        headers={"X-CSRFToken": csrf},
    )
    assert plain.status_code == 200 and plain.json()["model"] == "plain@1"


def test_a_session_needs_its_csrf_token_and_anonymous_requests_are_401(web, owner):
    anonymous = httpx.post(web.url + CHAT, json={"model": "chat", "messages": HELLO})
    assert anonymous.status_code == 401
    assert "authentication required" in anonymous.json()["detail"]
    client, _ = logged_in(web)
    forged = client.post(CHAT, json={"model": "chat", "messages": HELLO})
    assert forged.status_code == 403
    assert "CSRF" in forged.json()["detail"]


BAD_INPUTS = [
    (CHAT, b"{not json", 400, "not JSON"),
    (CHAT, b"[1, 2]", 400, "JSON object"),
    (CHAT, json.dumps({"messages": HELLO}).encode(), 400, "model is required"),
    (
        CHAT,
        json.dumps({"model": "nope", "messages": HELLO}).encode(),
        404,
        "is not served here: no slot",
    ),
    (CHAT, json.dumps({"model": "chat", "messages": []}).encode(), 400, "messages"),
    (CHAT, json.dumps({"model": "plain", "messages": HELLO}).encode(), 400, "chat template"),
    (
        COMPLETION,
        json.dumps({"model": "plain", "prompt": "hi", "max_tokens": 0}).encode(),
        400,
        "max_tokens",
    ),
    (CHAT, b"x" * (1024 * 1024 + 1), 413, "byte limit"),
]


def test_bad_input_is_4xx_with_a_detail_naming_it(web, owner):
    client, csrf = logged_in(web)
    headers = {"X-CSRFToken": csrf, "Content-Type": "application/json"}
    for path, body, status, words in BAD_INPUTS:
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == status, (body[:60], response.content)
        assert words in response.json()["detail"], (body[:60], response.content)


def test_a_worker_that_is_down_is_a_503_naming_it(owner, llms):  # noqa: F811
    with start_worker(env=LLM_ENV) as worker:
        worker.wait_ready()
        web = web_for(worker)
    try:  # the worker has stopped; the web keeps answering
        client, csrf = logged_in(web)
        response = client.post(
            CHAT, json={"model": "chat", "messages": HELLO}, headers={"X-CSRFToken": csrf}
        )
        assert response.status_code == 503
        assert "worker" in response.json()["detail"]
    finally:
        web.stop()


def in_flight(worker, ref: str) -> int:
    with worker.client() as control:
        models = control.get("/status").json()["models"]
    return sum(m.get("in_flight") or 0 for m in models if m.get("ref") == ref)


def test_hanging_up_the_relay_stops_the_generation_in_the_worker(web, llm_worker, owner):  # noqa: F811
    client, csrf = logged_in(web)
    headers = {"X-CSRFToken": csrf}
    body = {
        "model": "plain",
        "prompt": "hello",
        "max_tokens": 240,
        "temperature": 0,  # greedy: no early end of text
        "stream": True,
    }
    with client.stream("POST", COMPLETION, json=body, headers=headers) as response:
        # The worker answered the headers: it is generating now (a long greedy text).
        assert response.status_code == 200
        assert in_flight(llm_worker, "plain@1") == 1, "the generation ended before the test"
    hung_up = time.monotonic()  # the Stop button: the browser closes the stream
    while in_flight(llm_worker, "plain@1"):
        assert time.monotonic() - hung_up < 30, "the generation went on"
        time.sleep(0.02)
    freed_after = time.monotonic() - hung_up
    # Generating the whole text takes much longer than the worker took to stop.
    whole = time.monotonic()
    full = client.post(COMPLETION, json={**body, "stream": False}, headers=headers)
    assert full.status_code == 200 and full.json()["usage"]["completion_tokens"] > 100
    assert freed_after < (time.monotonic() - whole) / 2


def test_with_two_workers_a_conversation_goes_to_one_that_answers(llms, owner):  # noqa: F811
    """The relay spreads like predictions: a killed worker costs no conversation, even
    before its missed heartbeats mark it down."""
    fleet_env = {**LLM_ENV, "MODELMGR_WORKER_HEARTBEAT_S": "0.5"}
    with (
        start_worker(env={**fleet_env, "MODELMGR_WORKER_NAME": "w1"}) as w1,
        start_worker(env={**fleet_env, "MODELMGR_WORKER_NAME": "w2"}) as w2,
    ):
        w1.wait_ready()
        w2.wait_ready()
        web = WebProcess(
            env={
                **worker_environment(),
                "MODELMGR_WORKER_URL": w1.url,
                "MODELMGR_FLEET_REFRESH_S": "0.05",
                "MODELMGR_WORKER_DOWN_AFTER": "1000",  # still "up" long after it died
            }
        ).start()
        try:
            client, csrf = logged_in(web)
            body = {"model": "chat", "messages": HELLO, "max_tokens": 4, "stream": True}
            w1.kill()
            for _ in range(4):  # whichever worker each turn tries first
                with client.stream(
                    "POST", CHAT, json=body, headers={"X-CSRFToken": csrf}
                ) as response:
                    assert response.status_code == 200, response.read()
                    assert events(response.iter_lines())[-1] == "[DONE]"
        finally:
            web.stop()


def test_a_relayed_stream_never_read_leaves_no_count_and_frees_the_worker(
    llm_worker,  # noqa: F811
    owner,
    settings,
):
    """A browser that hangs up between the worker's headers and the first byte: the
    relayed stream is never read. The web's in-flight count must not keep it (it would
    steer every later conversation away from that worker), and once the relay is gone
    its connection closes, so the worker stops generating for nobody."""
    import asyncio
    import gc

    from modelmgr.deploy.llm_relay import llm_relay
    from modelmgr.deploy.spread import spread

    settings.MODELMGR_WORKER_URL = llm_worker.url
    body = {"model": "plain", "prompt": "hello", "max_tokens": 240, "temperature": 0}
    raw = json.dumps({**body, "stream": True}).encode()

    async def unread() -> None:
        relayed = await llm_relay(kind="completion", body=raw)
        assert relayed.status == 200
        assert in_flight(llm_worker, "plain@1") == 1, "the generation ended before the test"
        del relayed
        gc.collect()
        await asyncio.sleep(0.2)  # the closed connection reaches the worker

    asyncio.run(unread())
    assert sum(spread.in_flight.values()) == 0
    stopped = time.monotonic()
    while in_flight(llm_worker, "plain@1"):
        assert time.monotonic() - stopped < 30, "the worker went on generating"
        time.sleep(0.02)
