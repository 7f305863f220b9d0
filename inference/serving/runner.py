"""One inference on a slot, shared by every route that runs a model (/infer, v1, v2).

It does the least it can: take the slot's model from the routing table without a lock,
decode and check the inputs, run the model (on the event loop itself when it is fast,
else in a thread), record usage. The entry is held from the decode to the end of the
run, so a swap never pulls the model (or its signature) from under a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from inference.batching import Batcher
from inference.errors import InvalidInput
from inference.metrics import request_record, slot_label
from inference.pool import PoolEntry, short_error
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError

DECODE_IN_THREAD = 256 * 1024  # bodies larger than this are parsed off the event loop
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

    def close(self) -> None:
        self.threads.shutdown(wait=True)

    async def run(self, slot: str, decode: Decode, *, body_size: int = 0) -> Answer:
        """Decode the inputs against the served signature and run them on ``slot``.

        Raises the domain error (404 not served, 422 bad inputs, ...) or a 500 naming the
        model that failed; usage is recorded either way (a 4xx as refused).
        """
        worker = self.worker
        arrived = time.perf_counter()
        try:
            entry = worker.router.acquire(slot)
        except ModelmgrError as exc:  # not served, or being switched: no version reached
            request_record(
                slot_label(worker, slot), None, exc.status, time.perf_counter() - arrived
            )
            raise
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
            request_record(
                slot,
                entry.version_id,
                200 if error is None else error.status,
                time.perf_counter() - arrived,
            )
        if error is not None:
            raise error
        return Answer(entry, outputs, latency)


def _timed_infer(model, inputs):
    started = time.perf_counter()
    outputs = model.infer(inputs)
    return outputs, (time.perf_counter() - started) * 1000
