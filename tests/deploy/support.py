"""Helpers for deploy tests (also used by the API tests): versions with real stored bytes,
usage rows as the worker writes them."""

from __future__ import annotations

from bisect import bisect_left

from inference.stats import Counter, Tokens, write_usage
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
    """A minute's row written by the worker's own writer (which also adds it to the
    version's all-time total): errors are counted, latency only of successes."""
    return _written(version, slot, minute, _counter(latencies, errors))


def llm_bucket_row(
    version,
    slot: str,
    minute,
    *,
    ttfts: list[float],
    rates: list[float],
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    errors: int = 0,
):
    """A language model's row as the worker writes it: one successful generation per
    time to first token (ms); ``rates``: their decode speeds (tokens/s)."""
    counter = _counter([t * 2 for t in ttfts], errors)
    for ms in ttfts:
        counter.add_tokens(Tokens(0, 0, ttft_ms=ms), ok=True)
    for rate in rates:
        counter.add_tokens(Tokens(0, 0, tokens_per_s=rate), ok=True)
    counter.prompt_tokens, counter.completion_tokens = prompt_tokens, completion_tokens
    return _written(version, slot, minute, counter)


def _counter(latencies: list[float], errors: int) -> Counter:
    histogram = [0] * SIZE
    for ms in latencies:
        histogram[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
    return Counter(
        count=len(latencies) + errors,
        errors=errors,
        total_ms=sum(latencies),
        min_ms=min(latencies) if latencies else None,
        max_ms=max(latencies) if latencies else None,
        histogram=histogram,
    )


def _written(version, slot: str, minute, counter: Counter) -> UsageBucket:
    counter.last_used = minute.timestamp()
    write_usage((slot, version.pk, int(minute.timestamp() // 60)), counter)
    return UsageBucket.objects.get(
        version=version, slot_name=slot, minute=minute.replace(second=0, microsecond=0)
    )


def profile_row(version, p50_ms: float, *, batches=(1, 2, 4, 8), device: str = "cpu"):
    """A VersionProfile as the worker's profile writes it (p95/p99 above p50, latency
    growing with the batch)."""
    from modelmgr.models import VersionProfile

    results = []
    for batch in batches:
        p50 = p50_ms * (1 + 0.25 * (batch - 1))
        results.append(
            {
                "batch_size": batch,
                "iterations": 30,
                "p50_ms": p50,
                "p95_ms": p50 * 1.2,
                "p99_ms": p50 * 1.5,
                "mean_ms": p50 * 1.05,
                "throughput_per_s": round(batch * 1000 / (p50 * 1.05), 2),
                "seconds": 1.0,
            }
        )
    return VersionProfile.objects.create(
        version=version,
        device=device,
        runtime="onnxruntime",
        dynamic_batch=len(batches) > 1,
        load_ms=12.0,
        memory_bytes=version.size_bytes * 2 or 1024,
        measured_bytes=4096,
        results=results,
        duration_s=float(len(batches)),
    )
