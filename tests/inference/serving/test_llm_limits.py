"""Per-slot generation limits (Slot.llm_num_parallel / llm_max_queue) on a real worker
subprocess serving tiny real Llama models, with the official ``openai`` client."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from modelmgr.deploy.llm_limits import slot_llm_limits_set
from modelmgr.models import Slot
from tests.inference.serving.conftest import LLM_ENV, token
from tests.inference.serving.test_openai import client_for
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
# Nearly all the tiny model's context (256) leaves after a short prompt: a stream that
# long holds its place while the test looks (1-4 s on the shared 2-core VM, about 2 s
# on a GPU where each token is a few kernel launches).
LONG = 250


def eventually(check, *, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def generations(control: httpx.Client, slot: str) -> dict:
    return control.get("/status").json()["generations"].get(slot, {})


def completion(worker, raw: str, slot: str) -> httpx.Response:
    return httpx.post(
        worker.serve_url + "/v1/completions",
        json={"model": slot, "prompt": "hi", "max_tokens": 1},
        headers={"Authorization": f"Bearer {raw}"},
        timeout=60,
    )


class Held:
    """A streamed completion opened in a thread of its own and held open (unread past
    its first chunk) until ``close``: it keeps its generation place meanwhile."""

    def __init__(self, client: openai.OpenAI, slot: str):
        self.client, self.slot = client, slot
        self.first = threading.Event()
        self.done = threading.Event()
        self.error: Exception | None = None
        self.stream = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            self.stream = self.client.completions.create(
                model=self.slot, prompt="hello", max_tokens=LONG, temperature=0, stream=True
            )
            next(iter(self.stream))
            self.first.set()
        except Exception as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        finally:
            self.done.set()

    def close(self) -> None:
        self.done.wait(60)
        if self.stream is not None:
            self.stream.close()


def test_a_full_slot_refuses_with_retry_after_and_another_slot_is_unaffected(
    llms, owner, staff, settings
):
    Slot.objects.filter(name="chat").update(llm_num_parallel=1, llm_max_queue=1)
    with start_worker(env=LLM_ENV) as worker, worker.client() as control:
        worker.wait_ready()
        limits = control.get("/status").json()["llm_limits"]
        assert limits == {"chat": {"num_parallel": 1, "max_queue": 1}}
        raw = token(owner)
        client = client_for(worker, raw)
        first = Held(client, "chat")
        eventually(lambda: generations(control, "chat").get("generating") == 1, what="place")
        second = Held(client, "chat")
        eventually(lambda: generations(control, "chat").get("waiting") == 1, what="queue")
        # One generating, one waiting: the third is refused at once.
        busy = completion(worker, raw, "chat")
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "1"
        assert "1 parallel requests and 1 more are queued" in busy.json()["error"]["message"]
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=1
            )
        # The other slot keeps the defaults (2 at once, 16 waiting): three at once pass.
        others = [Held(client, "plain") for _ in range(3)]
        for other in others:
            assert other.done.wait(60) and other.error is None and other.first.is_set()
        for held in [first, second, *others]:
            held.close()
        assert first.error is None and second.error is None and second.first.is_set()
        # Once the streams are gone the slot serves again.
        eventually(lambda: completion(worker, raw, "chat").status_code == 200, what="freed")


def test_changing_the_limits_applies_without_a_restart(llms, owner, staff, settings):
    Slot.objects.filter(name="chat").update(llm_num_parallel=1, llm_max_queue=0)
    with start_worker(env=LLM_ENV) as worker, worker.client() as control:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url  # the service nudges this worker
        pid = worker.pid
        raw = token(owner)
        client = client_for(worker, raw)
        first = Held(client, "chat")
        eventually(lambda: generations(control, "chat").get("generating") == 1, what="place")
        assert completion(worker, raw, "chat").status_code == 503
        # Two at once now, through the service the API, admin and settings page use.
        slot_llm_limits_set(slot_name="chat", actor=staff, num_parallel=2)
        eventually(
            lambda: (
                control.get("/status").json()["llm_limits"].get("chat")
                == {"num_parallel": 2, "max_queue": 0}
            ),
            what="the worker to apply the new limits",
        )
        second = Held(client, "chat")
        assert second.done.wait(60) and second.error is None and second.first.is_set()
        # Back to the defaults (MODELMGR_LLM_NUM_PARALLEL 2, MODELMGR_LLM_MAX_QUEUE 16):
        # one more may wait behind the two generating.
        slot_llm_limits_set(slot_name="chat", actor=staff, num_parallel=0, max_queue=None)
        eventually(
            lambda: "chat" not in control.get("/status").json()["llm_limits"],
            what="the worker to go back to the defaults",
        )
        for held in (first, second):
            held.close()
        assert completion(worker, raw, "chat").status_code == 200
        assert worker.pid == pid
