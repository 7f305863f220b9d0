"""Which versions to run for a task in the memory there is (seed 001's "recommend by
VRAM"), ranked with the reasons in words.

1. Candidates: the caller's visible, deployable versions of models with the task.
2. Memory: the caller's ``available_vram_gb``, else the worker's free memory from its
   /status; neither known is a 422 (a guess would recommend what does not fit).
3. Each candidate's need comes from modelmgr.registry.memory_estimate (the figure the
   worker's admission computes, modelmgr.memory_need). Those that fit
   rank before those that do not (listed so the caller sees why not).
4. Score among them: purpose matching the priority, size (small for speed, large for
   quality, the middle for balanced), measured success rate and speed from the usage
   the worker flushed (UsageBucket), production readiness. Ties: newer first. Speed is
   the measured tokens/s (p50) where a version generated tokens (language models), else
   the mean request latency; it counts for the speed priority, and half as much for
   balanced when measured in tokens/s.
   Tensor models (every task but llm) rank instead by recorded accuracy, the latency
   and throughput of their stored profile (else measured latency) and memory, weighed
   by the priority (modelmgr.registry.recommend_tensor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from modelmgr.models import ModelVersion, Purpose, Task, UsageBucket
from modelmgr.registry.memory_estimate import GB, estimate_memory
from modelmgr.registry.recommend_tensor import score_tensor
from modelmgr.registry.validation import InvalidInput

USAGE_WINDOW = timedelta(days=30)
MIN_REQUESTS = 10  # fewer than this says nothing about a success rate
MAX_RESULTS = 50


@dataclass
class Recommendation:
    version: ModelVersion
    fits: bool
    estimate_bytes: int
    score: float = 0.0
    requests: int = 0
    success_rate: float | None = None
    mean_ms: float | None = None
    tokens_per_s: float | None = None
    ttft_ms: float | None = None
    # tensor models (modelmgr.registry.recommend_tensor)
    accuracy: float | None = None
    latency_ms: float | None = None
    throughput_per_s: float | None = None
    reasons: list[str] = field(default_factory=list)


def worker_free_bytes() -> int:
    """The least free memory among the up workers (by default every worker serves every
    slot, so what is recommended must fit on each); InvalidInput (422) when none can
    say."""
    from modelmgr.deploy.workers import memory_where, up_workers_asked

    asked = up_workers_asked()
    free, _, _ = memory_where(asked)
    if free is None or free < 0:
        errors = "; ".join(f"{m.name}: {entry['error']}" for m, entry in asked if entry["error"])
        raise InvalidInput(
            "available_vram_gb was not given and no worker reports its free memory"
            + (f" ({errors})" if errors else "")
            + "; pass available_vram_gb"
        )
    return free


def recommend(
    *,
    user,
    task: str = Task.LLM,
    priority: str = Purpose.BALANCED,
    available_vram_gb: float | None = None,
    available_bytes: int | None = None,
    context_length: int | None = None,
    parallel: int | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    if task not in Task.values:
        raise InvalidInput(f"task {task!r} is not one of: {', '.join(Task.values)}")
    if priority not in Purpose.values:
        raise InvalidInput(f"priority {priority!r} is not one of: {', '.join(Purpose.values)}")
    if available_bytes is not None and available_vram_gb is not None:
        raise InvalidInput("give available_vram_gb or available_bytes, not both")
    if available_bytes is not None:
        available, source = int(available_bytes), "request"
    elif available_vram_gb is not None:
        available, source = int(available_vram_gb * GB), "request"
    else:
        available, source = worker_free_bytes(), "worker"
    versions = list(
        ModelVersion.objects.visible_to(user)
        .deployable()
        .filter(model__task=task)
        .select_related("model", "model__owner")
        .order_by("-created_at", "-id")[:500]
    )
    usage = _usage([v.pk for v in versions])
    candidates = []
    for version in versions:
        estimate = estimate_memory(version, context=context_length, parallel=parallel)
        fits = estimate.total_bytes <= available
        item = Recommendation(version, fits, estimate.total_bytes)
        item.reasons.append(
            f"{'fits' if fits else 'does not fit'}: needs {estimate.total_bytes / GB:.2f} GB "
            f"of {available / GB:.2f} GB ({estimate.how})"
        )
        _score_usage(item, usage.get(version.pk))
        candidates.append(item)
    if task == Task.LLM:
        _score_purpose_and_size(candidates, priority)
    else:
        score_tensor(candidates, priority)
    for item in candidates:
        if item.version.production_ready:
            item.score += 0.5
            item.reasons.append("marked production-ready")
    candidates.sort(key=lambda c: (not c.fits, -c.score))
    return {
        "task": task,
        "priority": priority,
        "available_bytes": available,
        "memory_source": source,
        "items": [_out(rank, c) for rank, c in enumerate(candidates[:limit], start=1)],
    }


def _usage(version_ids: list[int]) -> dict[int, dict]:
    """Per version over USAGE_WINDOW: the stats summary (counts, latency, tokens/s
    percentiles from summed histograms)."""
    from modelmgr.deploy.stats import USAGE_FIELDS, Tally

    tallies: dict[int, Tally] = {}
    for row in UsageBucket.objects.filter(
        version_id__in=version_ids, minute__gte=timezone.now() - USAGE_WINDOW
    ).values(*USAGE_FIELDS):
        tallies.setdefault(row["version_id"], Tally()).add(row)
    return {version_id: tally.summary() for version_id, tally in tallies.items()}


def _score_usage(item: Recommendation, row: dict | None) -> None:
    if not row or not row["count"]:
        item.reasons.append("no measured usage yet")
        return
    count, errors = row["count"], row["errors"] or 0
    item.requests = count
    item.success_rate = (count - errors) / count
    item.mean_ms = row["mean_ms"]
    item.tokens_per_s = row["tokens_per_s_p50"]
    item.ttft_ms = row["ttft_p50_ms"]
    if item.tokens_per_s is not None:
        speed = f", {item.tokens_per_s:.1f} tokens/s p50"
        if item.ttft_ms is not None:
            speed += f", {item.ttft_ms:.0f} ms to first token p50"
    elif item.mean_ms is not None:
        speed = f", {item.mean_ms:.0f} ms mean"
    else:
        speed = ""
    item.reasons.append(
        f"measured: {count} requests, {item.success_rate:.1%} succeeded{speed} (30 days)"
    )
    if count >= MIN_REQUESTS:
        # Success matters most: +2 at 100 %, 0 at 90 %, -2 at 80 %.
        item.score += 2 - 20 * (1 - item.success_rate)


def _score_purpose_and_size(items: list[Recommendation], priority: str) -> None:
    sizes = [math.log10(i.version.parameter_count) for i in items if i.version.parameter_count]
    low, high = (min(sizes), max(sizes)) if sizes else (0.0, 0.0)
    measured = [i for i in items if i.requests >= MIN_REQUESTS]
    rates = [i.tokens_per_s for i in measured if i.tokens_per_s]
    speeds = [i.mean_ms for i in measured if i.mean_ms and not i.tokens_per_s]
    for item in items:
        purpose = item.version.purpose
        if purpose == priority:
            item.score += 3
            item.reasons.append(f"purpose {purpose} matches the priority")
        elif purpose:
            item.reasons.append(f"purpose {purpose}, not {priority}")
        count = item.version.parameter_count
        if count and high > low:
            position = (math.log10(count) - low) / (high - low)  # 0 smallest .. 1 largest
            if priority == Purpose.SPEED:
                item.score += 2 * (1 - position)
                item.reasons.append(f"size {item.version.parameter_size}: smaller is faster")
            elif priority == Purpose.QUALITY:
                item.score += 2 * position
                item.reasons.append(f"size {item.version.parameter_size}: larger is better")
            else:
                item.score += 2 * (1 - abs(position - 0.5) * 2)
                item.reasons.append(f"size {item.version.parameter_size}: mid-sized for balance")
        elif count:
            item.reasons.append(f"size {item.version.parameter_size}")
        _score_speed(item, priority, rates, speeds)


def _score_speed(
    item: Recommendation, priority: str, rates: list[float], speeds: list[float]
) -> None:
    """Measured tokens/s where the version generated (a share of the fastest; 1 for it),
    else mean latency (the speed priority only)."""
    if item.requests < MIN_REQUESTS:
        return
    if item.tokens_per_s and len(rates) > 1:
        weight = {Purpose.SPEED: 1.0, Purpose.BALANCED: 0.5}.get(priority, 0.0)
        if weight:
            share = item.tokens_per_s / max(rates)
            item.score += weight * share
            item.reasons.append(
                f"speed: {item.tokens_per_s:.1f} tokens/s p50, {share:.0%} of the fastest measured"
            )
    elif item.mean_ms and not item.tokens_per_s and len(speeds) > 1:
        if priority == Purpose.SPEED:
            item.score += min(speeds) / item.mean_ms  # 1 for the fastest measured


def _out(rank: int, item: Recommendation) -> dict[str, Any]:
    version = item.version
    return {
        "rank": rank,
        "ref": version.ref,
        "model": version.model.name,
        "owner": version.model.owner.get_username(),
        "version": version.version,
        "fits": item.fits,
        "estimated_bytes": item.estimate_bytes,
        "score": round(item.score, 3),
        "family": version.family,
        "parameter_size": version.parameter_size,
        "parameter_count": version.parameter_count,
        "purpose": version.purpose,
        "requests": item.requests,
        "success_rate": item.success_rate,
        "mean_ms": item.mean_ms,
        "tokens_per_s": item.tokens_per_s,
        "ttft_ms": item.ttft_ms,
        "accuracy": item.accuracy,
        "latency_ms": item.latency_ms,
        "throughput_per_s": item.throughput_per_s,
        "reasons": item.reasons,
    }
