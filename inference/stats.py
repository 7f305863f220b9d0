"""Usage counters per (slot, version, minute), recorded on the request path and flushed
into UsageBucket rows from a background thread.

Recording is a dict lookup and a few additions under a lock. ``count`` counts every
request routed to a version, ``refused`` those refused as the client's mistake (bad
inputs: a 4xx), ``errors`` those the model or the worker failed (a 5xx); latency
(total/min/max and the histogram over LATENCY_BUCKETS_MS plus one overflow bucket) covers
the successful runs only, so ``sum(histogram) == count - errors - refused`` and the mean
is ``total_ms / (count - errors - refused)``. Latency is the model's own time.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import IntegrityError, transaction

from modelmgr.models import LATENCY_BUCKETS_MS, ModelVersion, UsageBucket

log = logging.getLogger("inference")
HISTOGRAM_SIZE = len(LATENCY_BUCKETS_MS) + 1


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

    def merge(self, other: Counter) -> None:
        self.count += other.count
        self.errors += other.errors
        self.refused += other.refused
        self.total_ms += other.total_ms
        self.min_ms = _pick(min, self.min_ms, other.min_ms)
        self.max_ms = _pick(max, self.max_ms, other.max_ms)
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.last_used = max(self.last_used, other.last_used)


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
    ) -> None:
        """One request; ``refused``: it failed as the client's mistake (a 4xx), not the model's."""
        now = now_s()
        key = (slot, version_id, int(now // 60))
        with self._lock:
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = Counter()
            counter.count += 1
            counter.last_used = now
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
                    _upsert(key, pending[key])
                    written += 1
                del pending[key]
        except Exception:
            with self._lock:
                for key, counter in pending.items():
                    self._counters.setdefault(key, Counter()).merge(counter)
            raise
        return written


def _upsert(key: Key, counter: Counter) -> None:
    slot, version_id, minute = key
    minute_at = datetime.fromtimestamp(minute * 60, tz=UTC)
    last_used = datetime.fromtimestamp(counter.last_used, tz=UTC)
    for _ in range(3):
        try:
            with transaction.atomic():
                row = (
                    UsageBucket.objects.select_for_update()
                    .filter(version_id=version_id, slot_name=slot, minute=minute_at)
                    .first()
                )
                if row is None:
                    UsageBucket.objects.create(
                        version_id=version_id,
                        slot_name=slot,
                        minute=minute_at,
                        count=counter.count,
                        errors=counter.errors,
                        refused=counter.refused,
                        total_ms=counter.total_ms,
                        min_ms=counter.min_ms,
                        max_ms=counter.max_ms,
                        histogram=counter.histogram,
                        last_used=last_used,
                    )
                    return
                merged = Counter(
                    count=row.count,
                    errors=row.errors,
                    refused=row.refused,
                    total_ms=row.total_ms,
                    min_ms=row.min_ms,
                    max_ms=row.max_ms,
                    histogram=_sized(row.histogram),
                    last_used=row.last_used.timestamp() if row.last_used else 0.0,
                )
                merged.merge(counter)
                for name in (
                    "count",
                    "errors",
                    "refused",
                    "total_ms",
                    "min_ms",
                    "max_ms",
                    "histogram",
                ):
                    setattr(row, name, getattr(merged, name))
                row.last_used = datetime.fromtimestamp(merged.last_used, tz=UTC)
                row.save()
                return
        except IntegrityError:
            continue  # another worker created the row first: update it instead
    log.warning("could not write usage for %s", key)


def _sized(histogram) -> list[int]:
    values = [int(v) for v in (histogram or [])][:HISTOGRAM_SIZE]
    return values + [0] * (HISTOGRAM_SIZE - len(values))
