"""One inference on a slot, shared by every route that runs a model (/infer, v1, v2).

It does the least it can: take the slot's model from the routing table without a lock,
decode and check the inputs, run the model (on the event loop itself when it is fast,
else in a thread), record usage. The entry is held from the decode to the end of the
run, so a swap never pulls the model (or its signature) from under a request.

A slot with a canary answers each request from the arm the routing table picks (sticky
per client key); a slot with a shadow mirrors each successful request to it afterwards,
on a thread of its own, so the caller never waits for it nor sees its answer or error.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from inference.arms import outputs_agree
from inference.batching import Batcher
from inference.errors import InvalidInput
from inference.metrics import request_record, slot_label
from inference.pool import PoolEntry, short_error
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError

DECODE_IN_THREAD = 256 * 1024  # bodies larger than this are parsed off the event loop
# Shadow runs waiting at most; beyond it a mirrored request is dropped (counted as
# skipped), so a slow shadow can never pile up memory or CPU behind the primary.
SHADOW_QUEUE = 64
# A robot that sends it always gets the same arm of a canary (inference.router).
CLIENT_KEY_HEADER = b"x-client-key"


def client_key_of(scope) -> str | None:
    for name, value in scope["headers"]:
        if name == CLIENT_KEY_HEADER:
            return value.decode("latin-1")
    return None


Decode = Callable[[dict], dict[str, np.ndarray]]  # the served signature -> checked inputs


@dataclass
class Answer:
    entry: PoolEntry
    outputs: dict[str, np.ndarray]
    latency_ms: float


class InferRunner:
    def __init__(self, worker: Worker, *, threads: int, inline_ms: float):
        self.worker = worker
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="infer")
        self.inline_ms = inline_ms
        # Dynamic batching per slot, as the database says (worker.batching); None: alone.
        self.batcher = Batcher(lambda: worker.batching, self.threads)
        self.shadow_threads = ThreadPoolExecutor(1, thread_name_prefix="shadow")
        self.shadows_pending = 0
        self._shadow_lock = threading.Lock()

    def close(self) -> None:
        self.threads.shutdown(wait=True)
        self.shadow_threads.shutdown(wait=True)

    async def run(
        self, slot: str, decode: Decode, *, body_size: int = 0, client_key: str | None = None
    ) -> Answer:
        """Decode the inputs against the served signature and run them on ``slot``.

        Raises the domain error (404 not served, 422 bad inputs, ...) or a 500 naming the
        model that failed; usage is recorded either way (a 4xx as refused).
        """
        worker = self.worker
        arrived = time.perf_counter()
        try:
            pick = worker.router.acquire_arm(slot, client_key)
        except ModelmgrError as exc:  # not served, or being switched: no version reached
            request_record(
                slot_label(worker, slot), None, exc.status, time.perf_counter() - arrived
            )
            raise
        entry = pick.entry
        loop = asyncio.get_running_loop()
        ok, latency = False, None
        error: ModelmgrError | None = None
        try:
            if entry.model.tensor_refusal:
                raise InvalidInput(entry.model.tensor_refusal)
            if body_size > DECODE_IN_THREAD:
                inputs = await loop.run_in_executor(self.threads, decode, entry.signature)
            else:
                inputs = decode(entry.signature)
            batched = await self.batcher.run(slot, entry, inputs)
            if batched is not None:
                outputs, latency = batched
            elif entry.inline:
                started = time.perf_counter()
                outputs = entry.model.infer(inputs)
                latency = (time.perf_counter() - started) * 1000
            else:
                outputs, latency = await loop.run_in_executor(
                    self.threads, _timed_infer, entry.model, inputs
                )
            ok = True
            entry.avg_ms = (
                latency if entry.avg_ms == float("inf") else 0.9 * entry.avg_ms + 0.1 * latency
            )
            entry.inline = entry.avg_ms < self.inline_ms
        except ModelmgrError as exc:
            error = exc
        except Exception as exc:
            error = ModelmgrError(
                f"inference on slot {slot} ({entry.ref}) failed: {short_error(exc)}"
            )
            error.status = 500
        finally:
            worker.router.release(entry)
            refused = error is not None and 400 <= error.status < 500
            worker.usage.record(slot, entry.version_id, latency, ok, refused=refused)
            worker.arms.record(slot, pick.arm, entry.version_id, entry.ref, latency, ok)
            if pick.shadow is not None:
                # The same signature takes the same decoded inputs: no second decode.
                same = ok and pick.shadow.signature == entry.signature
                self._mirror(
                    slot, pick.shadow, decode, outputs if ok else None, inputs if same else None
                )
            request_record(
                slot,
                entry.version_id,
                200 if error is None else error.status,
                time.perf_counter() - arrived,
            )
        if error is not None:
            raise error
        # Queued for the drift thread (inference.drift): no numpy work here.
        worker.drift.observe(slot, entry.version_id, inputs, outputs)
        return Answer(entry, outputs, latency)

    def _mirror(self, slot: str, shadow: PoolEntry, decode: Decode, primary, inputs) -> None:
        """Run the request on the shadow in the background (it holds the shadow entry,
        released there); a failed primary request is not mirrored."""
        arms = self.worker.arms
        if primary is None or self.shadows_pending >= SHADOW_QUEUE:
            if primary is not None:
                arms.skipped(slot, shadow.version_id, shadow.ref)
            self.worker.router.release(shadow)
            return
        with self._shadow_lock:
            self.shadows_pending += 1
        future = self.shadow_threads.submit(self._shadow_run, slot, shadow, decode, primary, inputs)
        future.add_done_callback(lambda _: self._shadow_done())

    def _shadow_done(self) -> None:
        with self._shadow_lock:
            self.shadows_pending -= 1

    def _shadow_run(self, slot: str, shadow: PoolEntry, decode: Decode, primary, inputs) -> None:
        arms, latency, outputs = self.worker.arms, None, None
        try:
            if inputs is None:
                inputs = decode(shadow.signature)
            outputs, latency = _timed_infer(shadow.model, inputs)
        except Exception:  # noqa: BLE001 - a shadow's failure is its statistic, nothing more
            outputs = None
        finally:
            self.worker.router.release(shadow)
            arms.record(slot, "shadow", shadow.version_id, shadow.ref, latency, outputs is not None)
        if outputs is not None:
            try:
                matched, same_argmax = outputs_agree(primary, outputs)
            except (TypeError, ValueError):  # outputs that cannot be compared disagree
                matched = same_argmax = False
            arms.agreement(
                slot, shadow.version_id, shadow.ref, matched=matched, same_argmax=same_argmax
            )


def _timed_infer(model, inputs):
    started = time.perf_counter()
    outputs = model.infer(inputs)
    return outputs, (time.perf_counter() - started) * 1000
