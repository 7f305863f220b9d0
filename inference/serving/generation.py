"""Text generation on an llm slot, for the OpenAI- (and Ollama-) compatible routes.

1. ``LlmSession`` takes the slot's entry from the routing table and holds it until the
   generation thread has ended, so a switch lets in-flight generations finish on the old
   version (it drains, then unloads).
2. A per-model gate admits MODELMGR_LLM_NUM_PARALLEL generations at once; up to
   MODELMGR_LLM_MAX_QUEUE more wait; beyond that the request is refused with 503 and
   Retry-After (Ollama's OLLAMA_NUM_PARALLEL / OLLAMA_MAX_QUEUE).
3. ``pieces`` runs ``generate`` in a thread of its own and yields the new text as tokens
   arrive; stop strings cut the text and stop the model; a consumer that stops early
   (a client that hung up) sets the cancel flag, which stops generation within a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator

from django.conf import settings

from inference.entry import PoolEntry
from inference.metrics import request_record, slot_label
from inference.runtimes.llm import CausalLM, GenerationRequest
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError, NotFound, WorkerUnavailable


class Busy(WorkerUnavailable):
    """Every generation place and queue place of the model is taken."""


class NotALanguageModel(ModelmgrError):
    status = 400


class Gate:
    def __init__(self, parallel: int, max_queue: int):
        self.semaphore = asyncio.Semaphore(max(1, parallel))
        self.max_queue = max_queue
        self.waiting = 0

    async def enter(self, ref: str) -> None:
        if self.semaphore.locked():
            if self.waiting >= self.max_queue:
                raise Busy(
                    f"{ref} is generating for its {settings.MODELMGR_LLM_NUM_PARALLEL} "
                    f"parallel requests and {self.waiting} more are queued "
                    "(MODELMGR_LLM_NUM_PARALLEL / MODELMGR_LLM_MAX_QUEUE); retry"
                )
            self.waiting += 1
            try:
                await self.semaphore.acquire()
            finally:
                self.waiting -= 1
        else:
            await self.semaphore.acquire()

    def leave(self) -> None:
        self.semaphore.release()


_gates: weakref.WeakKeyDictionary[PoolEntry, Gate] = weakref.WeakKeyDictionary()


def gate_of(entry: PoolEntry) -> Gate:
    gate = _gates.get(entry)
    if gate is None:
        gate = _gates[entry] = Gate(
            settings.MODELMGR_LLM_NUM_PARALLEL, settings.MODELMGR_LLM_MAX_QUEUE
        )
    return gate


def llm_slots(worker: Worker) -> dict[str, PoolEntry]:
    """Served slots whose model is a language model: slot -> entry."""
    return {
        slot: route.entry
        for slot, route in worker.router.table.items()
        if isinstance(route.entry.model, CausalLM)
    }


def resolve_slot(worker: Worker, name: str) -> str:
    """The slot a request's ``model`` names: a slot, or the ``name@version`` a slot serves."""
    table = worker.router.table
    if name in table:
        return name
    for slot, route in table.items():
        if route.entry.ref == name:
            return slot
    served = ", ".join(sorted(llm_slots(worker))) or "none"
    raise NotFound(f"model {name!r} is not served here (language model slots: {served})")


class LlmSession:
    """One request's hold on an llm slot: entry, gate place, usage record."""

    def __init__(self, worker: Worker, slot: str):
        self.worker = worker
        self.slot = slot
        self.entry: PoolEntry | None = None
        self.gated = False
        self.arrived = time.perf_counter()
        self.status = 200

    @property
    def model(self) -> CausalLM:
        return self.entry.model

    async def __aenter__(self) -> LlmSession:
        worker = self.worker
        if not worker.ready:
            self.status = 503
            request_record(slot_label(worker, self.slot), None, 503, 0.0)
            raise WorkerUnavailable(worker.not_ready_detail)
        try:
            self.entry = worker.router.acquire(self.slot)
        except ModelmgrError as exc:
            request_record(slot_label(worker, self.slot), None, exc.status, 0.0)
            raise
        try:
            if not isinstance(self.entry.model, CausalLM):
                raise NotALanguageModel(
                    f"slot {self.slot} serves {self.entry.ref}, which is not a language model"
                )
            await gate_of(self.entry).enter(self.entry.ref)
            self.gated = True
        except BaseException as exc:
            self.status = getattr(exc, "status", 500)
            self._finish()
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.status = getattr(exc, "status", 500)
        self._finish()

    def _finish(self) -> None:
        if self.gated:
            gate_of(self.entry).leave()
            self.gated = False
        seconds = time.perf_counter() - self.arrived
        ok = self.status < 400
        self.worker.router.release(self.entry)
        self.worker.usage.record(
            self.slot,
            self.entry.version_id,
            seconds * 1000 if ok else None,
            ok,
            refused=400 <= self.status < 500,
        )
        request_record(self.slot, self.entry.version_id, self.status, seconds)


class Generation:
    """The text of one generation, as it comes; counts and finish reason at the end."""

    def __init__(self, model: CausalLM, request: GenerationRequest, stop: list[str]):
        self.model = model
        self.request = request
        self.stop = [s for s in stop if s]
        self.prompt_tokens = len(request.prompt_ids)
        self.completion_tokens = 0
        self.finish_reason = "length"
        self.text = ""

    @property
    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    async def pieces(self) -> AsyncIterator[str]:
        """New text as it is generated. Close it (contextlib.aclosing) to stop early: the
        generation thread is cancelled and waited for before the close returns."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = asyncio.Event()
        request = self.request

        def post(item) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a late thread
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            try:
                self.model.generate(request, lambda token: post(("token", token)))
                post(("end", None))
            except BaseException as exc:
                post(("error", exc))
            finally:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(done.set)

        threading.Thread(target=run, name="generate", daemon=True).start()
        ids: list[int] = []
        prefix = read = sent = 0
        hold = max((len(s) for s in self.stop), default=1) - 1
        eos = self.model.eos_token_id
        decode = self.model.decode

        def commit(final: bool) -> None:
            """Add the text of the tokens since the last commit, decoding only a short
            window (prefix..end) instead of every token so far; a token that ends in a
            partial character waits for the next one (until the end)."""
            nonlocal prefix, read
            before = decode(ids[prefix:read])
            after = decode(ids[prefix:])
            if len(after) > len(before) and (final or not after.endswith("\ufffd")):
                self.text += after[len(before) :]
                prefix, read = read, len(ids)

        try:
            while True:
                # Take every token that arrived meanwhile: one decode and one piece for
                # them all when the consumer is slower than the model.
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                ended = False
                for kind, value in batch:
                    if kind == "error":
                        raise value
                    if kind == "end":
                        ended = True
                        break
                    self.completion_tokens += 1
                    if value != eos:
                        ids.append(value)
                commit(ended)
                start = max(0, sent - hold)
                found = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
                if found:
                    self.text = self.text[: min(found)]
                    self.finish_reason = "stop"
                    request.cancel.set()
                    ended = True
                elif ended:
                    self.finish_reason = (
                        "length" if self.completion_tokens >= request.max_tokens else "stop"
                    )
                if ended:
                    if len(self.text) > sent:
                        yield self.text[sent:]
                    return
                # Keep back what may still become a stop string.
                safe = len(self.text) - hold
                if safe > sent:
                    yield self.text[sent:safe]
                    sent = safe
        finally:
            request.cancel.set()
            await done.wait()


async def watch_disconnect(receive, cancel: threading.Event) -> None:
    """Set ``cancel`` when the client hangs up (run as a task once the body is read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return
