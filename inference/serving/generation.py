"""Text generation on an llm slot, for the OpenAI- (and Ollama-) compatible routes.

1. ``LlmSession`` takes the slot's entry from the routing table and holds it until the
   generation thread has ended, so a switch lets in-flight generations finish on the old
   version (it drains, then unloads).
2. A gate per model and slot admits the slot's parallel generations at once and lets
   its max queue more wait (Slot.llm_num_parallel / llm_max_queue, else
   MODELMGR_LLM_NUM_PARALLEL / MODELMGR_LLM_MAX_QUEUE); beyond that the request is
   refused with 503 and Retry-After (Ollama's OLLAMA_NUM_PARALLEL / OLLAMA_MAX_QUEUE).
3. ``pieces`` runs ``generate`` in a thread of its own and yields the new text as tokens
   arrive; stop strings cut the text and stop the model; a consumer that stops early
   (a client that hung up) sets the cancel flag, which stops generation within a token.
4. When the session ends it records the request in the usage counters, with the token
   counts, the time to first token (from the request's arrival, so queueing counts) and
   the decode speed of the generation ``LlmSession.begin`` made (inference.stats.Tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable

from django.conf import settings

from inference.entry import PoolEntry
from inference.metrics import request_record, slot_label
from inference.runtimes.llm import CausalLM, GenerationRequest
from inference.runtimes.provider import ProvidedLM
from inference.serving.handoff import Handoff
from inference.stats import Tokens
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError, WorkerUnavailable


class Busy(WorkerUnavailable):
    """Every generation place and queue place of the model is taken."""


class NotALanguageModel(ModelmgrError):
    status = 400


Limits = tuple[int, int]  # (generations at once, requests that may wait)


def slot_limits(worker: Worker, slot: str) -> Limits:
    """The slot's generation limits: its own (the database's, applied on each reconcile
    pass: worker.llm_limits), else MODELMGR_LLM_NUM_PARALLEL / MODELMGR_LLM_MAX_QUEUE."""
    parallel, queue = worker.llm_limits.get(slot, (0, None))
    return (
        parallel or settings.MODELMGR_LLM_NUM_PARALLEL,
        settings.MODELMGR_LLM_MAX_QUEUE if queue is None else queue,
    )


class Gate:
    """Generations at once and a FIFO queue behind them, with limits read at each entry
    and exit, so a change applies to the next request without a restart (lowering the
    parallel count lets the generations under way finish; raising it admits waiters at
    the next entry or exit)."""

    def __init__(self, limits: Callable[[], Limits]):
        self.limits = limits
        self.active = 0
        self.waiters: deque[asyncio.Future] = deque()

    async def enter(self, ref: str) -> None:
        self._admit()
        parallel, max_queue = self.limits()
        if self.active < max(1, parallel) and not self.waiters:
            self.active += 1
            return
        if len(self.waiters) >= max_queue:
            raise Busy(
                f"{ref} is generating for its {parallel} parallel requests and "
                f"{len(self.waiters)} more are queued (the slot's limits, else "
                "MODELMGR_LLM_NUM_PARALLEL / MODELMGR_LLM_MAX_QUEUE); retry"
            )
        place = asyncio.get_running_loop().create_future()
        self.waiters.append(place)
        try:
            await place  # resolved by _admit, which counts it in ``active``
        except BaseException:
            if place.done() and not place.cancelled():
                self.leave()  # admitted as it was cancelled: hand the place on
            else:
                self.waiters.remove(place)
            raise

    def leave(self) -> None:
        self.active -= 1
        self._admit()

    def _admit(self) -> None:
        parallel = max(1, self.limits()[0])
        while self.waiters and self.active < parallel:
            place = self.waiters.popleft()
            if not place.done():
                place.set_result(None)
                self.active += 1


# Per model and slot: a switch gives the slot a new entry with a gate of its own, while
# the generations under way finish on the old one (and its gate).
_gates: weakref.WeakKeyDictionary[PoolEntry, dict[str, Gate]] = weakref.WeakKeyDictionary()


def gate_of(entry: PoolEntry, slot: str, worker: Worker) -> Gate:
    gates = _gates.setdefault(entry, {})
    gate = gates.get(slot)
    if gate is None:
        gate = gates[slot] = Gate(lambda: slot_limits(worker, slot))
    return gate


def gate_counts() -> dict[str, dict[str, int]]:
    """Per slot with a gate: generations under way and requests waiting (over the old
    and new model during a switch). Read from other threads: a snapshot, retried if the
    event loop changed the gates meanwhile."""
    for _ in range(5):
        try:
            counts: dict[str, dict[str, int]] = {}
            for gates in list(_gates.values()):
                for slot, gate in list(gates.items()):
                    count = counts.setdefault(slot, {"generating": 0, "waiting": 0})
                    count["generating"] += gate.active
                    count["waiting"] += len(gate.waiters)
            return dict(sorted(counts.items()))
        except RuntimeError:  # changed size during iteration
            continue
    return {}


def is_language_model(model) -> bool:
    """Run here (CausalLM) or by a provider (ProvidedLM, proxied)."""
    return isinstance(model, (CausalLM, ProvidedLM))


def llm_slots(worker: Worker) -> dict[str, PoolEntry]:
    """Served slots whose model is a language model: slot -> entry."""
    return {
        slot: route.entry
        for slot, route in worker.router.table.items()
        if is_language_model(route.entry.model)
    }


class LlmSession:
    """One request's hold on an llm slot: entry, gate place, usage record."""

    def __init__(self, worker: Worker, slot: str, *, held: PoolEntry | None = None):
        """``held``: a version no slot serves, already acquired by the caller (Ollama's
        on-demand loading, inference.serving.ondemand); the session releases it."""
        self.worker = worker
        self.slot = slot
        self.held = held
        self.entry: PoolEntry | None = held
        self.gated = False
        self.arrived = time.perf_counter()
        self.status = 200
        self.generation: Generation | None = None

    @property
    def model(self) -> CausalLM | ProvidedLM:
        return self.entry.model

    def begin(self, request: GenerationRequest, stop: list[str]) -> Generation:
        """The request's generation, whose tokens and timings the usage record takes."""
        return self.adopt(Generation(self.model, request, stop))

    def adopt(self, generation: Generation) -> Generation:
        """Record ``generation`` (a provider's, proxied) as this request's generation."""
        self.generation = generation
        return generation

    async def __aenter__(self) -> LlmSession:
        worker = self.worker
        if self.held is not None:
            pass  # acquired by the caller
        elif not worker.ready:
            self.status = 503
            request_record(slot_label(worker, self.slot), None, 503, 0.0)
            raise WorkerUnavailable(worker.not_ready_detail)
        else:
            try:
                self.entry = worker.router.acquire(self.slot)
            except ModelmgrError as exc:
                request_record(slot_label(worker, self.slot), None, exc.status, 0.0)
                raise
        try:
            if not is_language_model(self.entry.model):
                raise NotALanguageModel(
                    f"slot {self.slot} serves {self.entry.ref}, which is not a language model"
                )
            await gate_of(self.entry, self.slot, self.worker).enter(self.entry.ref)
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
            gate_of(self.entry, self.slot, self.worker).leave()
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
            tokens=self.generation.tokens(self.arrived) if self.generation else None,
        )
        request_record(self.slot, self.entry.version_id, self.status, seconds)


_END = object()  # the generation thread finished


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
        # perf_counter of the first and the last token the model produced (its thread)
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.produced = 0

    def tokens(self, arrived: float) -> Tokens:
        """Counts and timings for the usage record; ``arrived``: the request's perf_counter."""
        ttft = tps = None
        if self.first_token_at is not None:
            ttft = (self.first_token_at - arrived) * 1000
            decoding = self.last_token_at - self.first_token_at
            if self.produced > 1 and decoding > 0:
                tps = (self.produced - 1) / decoding
        return Tokens(self.prompt_tokens, self.completion_tokens, ttft, tps)

    @property
    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    async def ready(self) -> None:
        """Wait until the stream can begin (a provider's first answer: see
        inference.serving.provided); a local model is ready at once."""

    async def pieces(self, interval: float | None = None) -> AsyncIterator[str]:
        """New text as it is generated. Close it (contextlib.aclosing) to stop early: the
        generation thread is cancelled and waited for before the close returns.

        The tokens reach the event loop in batches (inference.serving.handoff): the first
        at once, then at most one batch per ``interval`` seconds (default
        MODELMGR_LLM_STREAM_INTERVAL_MS), each one piece of text."""
        if interval is None:
            interval = settings.MODELMGR_LLM_STREAM_INTERVAL_MS / 1000
        loop = asyncio.get_running_loop()
        handoff = Handoff(loop, interval)
        done = asyncio.Event()
        request = self.request

        def on_token(token: int) -> None:
            now = time.perf_counter()
            if self.first_token_at is None:
                self.first_token_at = now
            self.last_token_at = now
            self.produced += 1
            handoff.put(token)

        def run() -> None:
            try:
                self.model.generate(request, on_token)
                handoff.put(_END, last=True)
            except BaseException as exc:
                handoff.put(exc, last=True)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed under a late thread
                    loop.call_soon_threadsafe(done.set)

        threading.Thread(target=run, name="generate", daemon=True).start()
        sent = 0
        hold = max((len(s) for s in self.stop), default=1) - 1
        eos = self.model.eos_token_id
        # Incremental: each token's new text once (a token that ends in a partial
        # character gives its text with the next one).
        text_of = self.model.text_stream()

        try:
            while True:
                ended = False
                new: list[str] = []
                for item in await handoff.take():
                    if item is _END:
                        ended = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    self.completion_tokens += 1
                    if item != eos:
                        piece = text_of(item)
                        if piece:
                            new.append(piece)
                if new:
                    self.text += "".join(new)
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
