"""Usage counters per (slot, version, minute), recorded on the request path and flushed
into UsageBucket rows (and the all-time UsageTotal rows) from a background thread.

Recording is a dict lookup and a few additions under a lock. ``count`` counts every
request routed to a version, ``refused`` those refused as the client's mistake (bad
inputs: a 4xx), ``errors`` those the model or the worker failed (a 5xx); latency
(total/min/max and the histogram over LATENCY_BUCKETS_MS plus one overflow bucket) covers
the successful runs only, so ``sum(histogram) == count - errors - refused`` and the mean
is ``total_ms / (count - errors - refused)``. Latency is the model's own time.

Language models add ``Tokens`` to a record: prompt and generated token counts of every
generation that started, and for the successful ones the time to first token (ms, over
LATENCY_BUCKETS_MS) and the decode speed (tokens/s, over TOKENS_PER_S_BUCKETS), kept as
histograms that add up across minutes like the latency one.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import IntegrityError, transaction

from modelmgr.models import (
    LATENCY_BUCKETS_MS,
    TOKENS_PER_S_BUCKETS,
    USAGE_FIGURES,
    ModelVersion,
    UsageBucket,
    UsageTotal,
)

log = logging.getLogger("inference")
HISTOGRAM_SIZE = len(LATENCY_BUCKETS_MS) + 1
TPS_HISTOGRAM_SIZE = len(TOKENS_PER_S_BUCKETS) + 1


@dataclass(frozen=True)
class Tokens:
    """One generation's figures. ``ttft_ms``: from the request's arrival to its first
    token; ``tokens_per_s``: the tokens after the first over the time between the first
    and the last (None with fewer than two tokens)."""

    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None = None
    tokens_per_s: float | None = None


@dataclass
class Counter:
    count: int = 0
    errors: int = 0
    refused: int = 0
    total_ms: float = 0.0
    min_ms: float | None = None
    max_ms: float | None = None
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)
    last_used: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_total_ms: float = 0.0
    ttft_min_ms: float | None = None
    ttft_max_ms: float | None = None
    ttft_histogram: list[int] = field(default_factory=list)  # [] until a first sample
    tps_min: float | None = None
    tps_max: float | None = None
    tps_histogram: list[int] = field(default_factory=list)

    def add_tokens(self, tokens: Tokens, ok: bool) -> None:
        self.prompt_tokens += tokens.prompt_tokens
        self.completion_tokens += tokens.completion_tokens
        if not ok:
            return
        ttft, tps = tokens.ttft_ms, tokens.tokens_per_s
        if ttft is not None:
            self.ttft_total_ms += ttft
            self.ttft_min_ms = _pick(min, self.ttft_min_ms, ttft)
            self.ttft_max_ms = _pick(max, self.ttft_max_ms, ttft)
            if not self.ttft_histogram:
                self.ttft_histogram = [0] * HISTOGRAM_SIZE
            self.ttft_histogram[bisect_left(LATENCY_BUCKETS_MS, ttft)] += 1
        if tps is not None:
            self.tps_min = _pick(min, self.tps_min, tps)
            self.tps_max = _pick(max, self.tps_max, tps)
            if not self.tps_histogram:
                self.tps_histogram = [0] * TPS_HISTOGRAM_SIZE
            self.tps_histogram[bisect_left(TOKENS_PER_S_BUCKETS, tps)] += 1

    def merge(self, other: Counter) -> None:
        self.count += other.count
        self.errors += other.errors
        self.refused += other.refused
        self.total_ms += other.total_ms
        self.min_ms = _pick(min, self.min_ms, other.min_ms)
        self.max_ms = _pick(max, self.max_ms, other.max_ms)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.last_used = max(self.last_used, other.last_used)
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.ttft_total_ms += other.ttft_total_ms
        self.ttft_min_ms = _pick(min, self.ttft_min_ms, other.ttft_min_ms)
        self.ttft_max_ms = _pick(max, self.ttft_max_ms, other.ttft_max_ms)
        self.ttft_histogram = _summed(self.ttft_histogram, other.ttft_histogram, HISTOGRAM_SIZE)
        self.tps_min = _pick(min, self.tps_min, other.tps_min)
        self.tps_max = _pick(max, self.tps_max, other.tps_max)
        self.tps_histogram = _summed(self.tps_histogram, other.tps_histogram, TPS_HISTOGRAM_SIZE)


def _summed(a: list[int], b: list[int], size: int) -> list[int]:
    """Two histograms added up; [] stays [] (no samples on either side)."""
    if not b:
        return list(a)
    if not a:
        return list(b)
    return [x + y for x, y in zip(_sized(a, size), _sized(b, size), strict=True)]


def _pick(choose, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return choose(a, b)


def now_s() -> float:
    return time.time()


Key = tuple[str, int, int]  # slot, version id, minute (epoch // 60)


class UsageRecorder:
    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[Key, Counter] = {}

    def record(
        self,
        slot: str,
        version_id: int,
        latency_ms: float | None,
        ok: bool,
        *,
        refused: bool = False,
        tokens: Tokens | None = None,
    ) -> None:
        """One request; ``refused``: it failed as the client's mistake (a 4xx), not the
        model's; ``tokens``: a language model's generation figures."""
        now = now_s()
        key = (slot, version_id, int(now // 60))
        with self._lock:
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = Counter()
            counter.count += 1
            counter.last_used = now
            if tokens is not None:
                counter.add_tokens(tokens, ok and not refused)
            if refused:
                counter.refused += 1
                return
            if not ok:
                counter.errors += 1
                return
            if latency_ms is None:
                return
            counter.total_ms += latency_ms
            if counter.min_ms is None or latency_ms < counter.min_ms:
                counter.min_ms = latency_ms
            if counter.max_ms is None or latency_ms > counter.max_ms:
                counter.max_ms = latency_ms
            counter.histogram[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1

    def pending(self) -> dict[Key, Counter]:
        with self._lock:
            return dict(self._counters)

    def flush(self) -> int:
        """Write the pending counters; returns the number of rows touched.

        1. Take the pending counters (recording goes on into a fresh dict).
        2. Per (slot, version, minute): lock the row, add counts, merge the histogram;
           create it when missing (a concurrent creator -> retry as an update).
        3. Counters of deleted versions are dropped; on a database error the rest are
           put back for the next flush.
        """
        with self._lock:
            pending, self._counters = self._counters, {}
        if not pending:
            return 0
        written = 0
        try:
            existing = set(
                ModelVersion.objects.filter(
                    pk__in={version_id for _, version_id, _ in pending}
                ).values_list("pk", flat=True)
            )
            for key in list(pending):
                if key[1] in existing:
                    write_usage(key, pending[key])
                    written += 1
                del pending[key]
        except Exception:
            with self._lock:
                for key, counter in pending.items():
                    self._counters.setdefault(key, Counter()).merge(counter)
            raise
        return written


def write_usage(key: Key, counter: Counter) -> None:
    """Add ``counter`` to its minute's bucket and to the version's all-time total in the
    slot, in one transaction: the total is always the sum of the buckets. Rows are
    locked in the same order by every worker (bucket, then total)."""
    slot, version_id, minute = key
    minute_at = datetime.fromtimestamp(minute * 60, tz=UTC)
    for _ in range(3):
        try:
            with transaction.atomic():
                _add(UsageBucket, counter, version_id=version_id, slot_name=slot, minute=minute_at)
                _add(UsageTotal, counter, version_id=version_id, slot_name=slot)
            return
        except IntegrityError:
            continue  # another worker created a row first: update it instead
    log.warning("could not write usage for %s", key)


def _add(model, counter: Counter, **lookup) -> None:
    """Lock the row of ``lookup`` and add ``counter`` to it; create it when missing."""
    row = model.objects.select_for_update().filter(**lookup).first()
    if row is None:
        row = model(**lookup)
        merged = counter
    else:
        merged = Counter(
            **{name: getattr(row, name) for name in _STORED},
            last_used=row.last_used.timestamp() if row.last_used else 0.0,
        )
        merged.histogram = _sized(row.histogram)
        merged.merge(counter)
    for name in _STORED:
        setattr(row, name, getattr(merged, name))
    row.last_used = datetime.fromtimestamp(merged.last_used, tz=UTC)
    row.save()


# What a row stores of a Counter (last_used is a datetime there, a timestamp here).
_STORED = tuple(name for name in USAGE_FIGURES if name != "last_used")


def _sized(histogram, size: int = HISTOGRAM_SIZE) -> list[int]:
    values = [int(v) for v in (histogram or [])][:size]
    return values + [0] * (size - len(values))
