"""Helpers for deploy tests (also used by the API tests): versions with real stored bytes,
usage rows as the worker writes them."""

from __future__ import annotations

from bisect import bisect_left

from modelmgr.models import LATENCY_BUCKETS_MS, UsageBucket
from tests.registry.factories import make_model, make_version

SIZE = len(LATENCY_BUCKETS_MS) + 1

SIGNATURE = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
}


def version_of(
    owner,
    name: str = "clf",
    version: str = "1",
    *,
    task: str = "classifier",
    signature: dict | None = None,
    **fields,
):
    from modelmgr.models import RegisteredModel

    model = RegisteredModel.objects.filter(owner=owner, name=name).first() or make_model(
        owner, name, task=task
    )
    return make_version(
        model, version, signature=SIGNATURE if signature is None else signature, **fields
    )


def bucket_row(version, slot: str, minute, latencies: list[float], errors: int = 0):
    """A row as the worker writes it: errors are counted, latency only of successes."""
    histogram = [0] * SIZE
    for ms in latencies:
        histogram[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
    return UsageBucket.objects.create(
        version=version,
        slot_name=slot,
        minute=minute.replace(second=0, microsecond=0),
        count=len(latencies) + errors,
        errors=errors,
        total_ms=sum(latencies),
        min_ms=min(latencies) if latencies else None,
        max_ms=max(latencies) if latencies else None,
        histogram=histogram,
        last_used=minute,
    )
