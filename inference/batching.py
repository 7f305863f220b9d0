"""Dynamic batching: concurrent requests to a slot stacked into one model run.

Triton's ``dynamic_batching`` on the worker. Requests to a batching slot
(``Slot.max_batch_size`` > 1, read by each reconcile pass into ``Worker.batching``) join
a queue on the event loop instead of running alone; a batch closes when

1. its rows reach ``max_batch_size``, or a preferred size (everything that arrived is
   already in the queue when a request joins it, so "nothing else waiting" holds), or
2. its oldest request has waited ``max_queue_delay_us`` (a timer): no request waits
   longer than that for others.

The inputs are concatenated along dim 0 into one ``model.infer`` in the infer thread
pool, and each output is split back by each request's rows. When that run fails (a
value in one request the model cannot take), each request runs again alone, so only
the culprit fails.

What may share a batch: requests already decoded and checked against the signature
(a bad one fails alone before it joins), on the same loaded entry (each request holds
the entry it was routed to, so a batch runs entirely on one version however a switch
lands), with the same shapes past dim 0 and the same dtypes. A request with more rows
than ``max_batch_size``, or whose inputs disagree on dim 0, runs alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from inference.metrics import batch_record
from inference.signature import batch_dim_problem

log = logging.getLogger("inference")

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from inference.pool import PoolEntry


class BatchConfig(NamedTuple):
    max_batch_size: int
    max_queue_delay_us: int
    preferred_batch_sizes: tuple[int, ...] = ()


@dataclass(eq=False)
class _Pending:
    entry: PoolEntry
    inputs: dict[str, np.ndarray]
    rows: int
    arrived: float
    future: asyncio.Future


@dataclass(eq=False)
class _Group:
    config: BatchConfig
    items: list[_Pending] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass
class SlotBatchStats:
    batches: int = 0
    requests: int = 0
    rows: int = 0
    max_queue_ms: float = 0.0
    total_queue_ms: float = 0.0
    sizes: Counter = field(default_factory=Counter)  # requests in a batch -> batches

    def as_dict(self) -> dict:
        return {
            "batches": self.batches,
            "requests": self.requests,
            "rows": self.rows,
            "mean_batch": round(self.requests / self.batches, 3) if self.batches else None,
            "mean_queue_ms": round(self.total_queue_ms / self.requests, 3)
            if self.requests
            else None,
            "max_queue_ms": round(self.max_queue_ms, 3),
            "sizes": {str(size): n for size, n in sorted(self.sizes.items())},
        }


class Batcher:
    """Queues per (slot, entry, shapes past dim 0, dtypes); lives on the event loop.

    ``configs`` is a callable giving the slot -> BatchConfig mapping in force (the
    worker's, replaced whole by the control thread, read here without a lock).
    """

    def __init__(self, configs, executor: Executor):
        self.configs = configs
        self.executor = executor
        self._groups: dict[tuple, _Group] = {}
        self._stats: dict[str, SlotBatchStats] = {}

    def stats(self) -> dict:
        return {slot: s.as_dict() for slot, s in sorted(self._stats.items())}

    async def run(
        self, slot: str, entry: PoolEntry, inputs: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], float] | None:
        """(outputs, the batch's model ms) through a batch, or None: run it alone."""
        config = self.configs().get(slot)
        if config is None or config.max_batch_size <= 1:
            return None
        rows = self._rows(entry, inputs)
        if rows is None or rows >= config.max_batch_size:
            return None
        key = (
            slot,
            id(entry),
            tuple(
                (name, array.shape[1:], array.dtype.str) for name, array in sorted(inputs.items())
            ),
        )
        loop = asyncio.get_running_loop()
        pending = _Pending(entry, inputs, rows, time.perf_counter(), loop.create_future())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(config)
        elif group.rows + rows > config.max_batch_size:
            self._dispatch(slot, key, group)  # it cannot take this one: run what it has
            group = self._groups[key] = _Group(config)
        group.items.append(pending)
        group.rows += rows
        if group.rows >= config.max_batch_size or group.rows in config.preferred_batch_sizes:
            self._dispatch(slot, key, group)
        elif group.timer is None:
            group.timer = loop.call_later(
                config.max_queue_delay_us / 1e6, self._expire, slot, key, group
            )
        return await pending.future

    def _rows(self, entry: PoolEntry, inputs: dict[str, np.ndarray]) -> int | None:
        """The request's rows (its dim 0), or None when it must run alone: the served
        version has no dynamic batch dimension (a switch may bring one in while the slot
        batches), or its inputs disagree on dim 0 (the model refuses it, alone)."""
        if batch_dim_problem(entry.signature):
            return None
        rows = {a.shape[0] if a.ndim else None for a in inputs.values()}
        if len(rows) != 1 or None in rows:
            return None
        return rows.pop()

    def _expire(self, slot: str, key: tuple, group: _Group) -> None:
        group.timer = None
        if self._groups.get(key) is group:
            self._dispatch(slot, key, group)

    def _dispatch(self, slot: str, key: tuple, group: _Group) -> None:
        if self._groups.get(key) is group:
            del self._groups[key]
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        if not group.items:
            return
        now = time.perf_counter()
        stats = self._stats.setdefault(slot, SlotBatchStats())
        stats.batches += 1
        stats.requests += len(group.items)
        stats.rows += group.rows
        stats.sizes[len(group.items)] += 1
        batch_record(slot, len(group.items), [now - item.arrived for item in group.items])
        for item in group.items:
            waited = (now - item.arrived) * 1000
            stats.total_queue_ms += waited
            stats.max_queue_ms = max(stats.max_queue_ms, waited)
        asyncio.ensure_future(self._execute(group.items))

    async def _execute(self, items: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        if len(items) > 1:
            try:
                outputs, latency = await loop.run_in_executor(
                    self.executor, _stacked_infer, items[0].entry.model, items
                )
                parts = _split(outputs, [item.rows for item in items])
            except Exception:
                # Something in one request's values (an index out of range, say) fails
                # the whole run: run each alone, so only that request fails.
                log.info("a batch of %d failed; running its requests one by one", len(items))
            else:
                for item, part in zip(items, parts, strict=True):
                    if not item.future.done():
                        item.future.set_result((part, latency))
                return
        for item in items:
            try:
                result = await loop.run_in_executor(
                    self.executor, _timed_infer, item.entry.model, item.inputs
                )
            except Exception as exc:
                if not item.future.done():
                    item.future.set_exception(exc)
            else:
                if not item.future.done():
                    item.future.set_result(result)


def _timed_infer(model, inputs):
    started = time.perf_counter()
    outputs = model.infer(inputs)
    return outputs, (time.perf_counter() - started) * 1000


def _stacked_infer(model, items: list[_Pending]):
    names = list(items[0].inputs)
    stacked = {name: np.concatenate([item.inputs[name] for item in items]) for name in names}
    return _timed_infer(model, stacked)


def _split(outputs: dict[str, np.ndarray], rows: list[int]) -> list[dict[str, np.ndarray]]:
    total = sum(rows)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise BatchOutputMismatch(
                f"output {name!r} of a batch of {total} rows has shape {list(array.shape)}: "
                "the model does not keep the batch dimension; turn batching off for its slot"
            )
    offsets = np.cumsum([0, *rows])
    return [
        {name: array[offsets[i] : offsets[i + 1]] for name, array in outputs.items()}
        for i in range(len(rows))
    ]


class BatchOutputMismatch(Exception):
    pass
