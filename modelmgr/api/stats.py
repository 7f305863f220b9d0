"""/stats: usage per slot and version from the worker's per-minute buckets."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from modelmgr.deploy.stats import stats_aggregate

router = Router(tags=["stats"])


class StatsFilters(Schema):
    slot: str | None = None
    model: str | None = Field(None, description="name or owner/name")
    version: str | None = Field(None, description="version of `model`, or name@version")
    since: str | None = Field(
        None, description="ISO 8601 time or a duration back from now: 15m, 24h, 7d (default 24h)"
    )


class Summary(Schema):
    count: int
    errors: int = Field(description="requests the model or the worker failed (5xx)")
    refused: int = Field(description="requests refused as the client's mistake (4xx)")
    error_rate: float
    min_ms: float | None
    max_ms: float | None
    mean_ms: float | None = Field(description="over successful requests")
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    last_used: datetime | None
    # Language models (0 / null for tensor models)
    success_rate: float | None = Field(
        description="1 - error_rate: requests the model did not fail (null without requests)"
    )
    prompt_tokens: int = Field(description="prompt tokens of the generations that started")
    completion_tokens: int = Field(description="tokens generated (as each answer's usage)")
    generations: int = Field(description="successful generations with a first token")
    ttft_mean_ms: float | None = Field(
        description="time to first token, from the request's arrival at the worker (ms)"
    )
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    tokens_per_s_p50: float | None = Field(
        description="decode speed: tokens after the first / time from the first to the last"
    )
    tokens_per_s_p95: float | None


class GroupOut(Summary):
    slot: str
    version_id: int
    ref: str | None
    owner: str | None


class MinuteOut(Schema):
    minute: datetime
    count: int
    errors: int
    refused: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    tokens_per_s_p50: float | None
    tokens_per_s_p95: float | None


class StatsOut(Schema):
    since: datetime
    until: datetime
    totals: Summary
    groups: list[GroupOut] = Field(description="one per (slot, version)")
    series: list[MinuteOut] = Field(description="per minute with traffic, oldest first")


@router.get("/stats", response=StatsOut, summary="Usage: counts, errors, latency, tokens, tokens/s")
def stats(request: HttpRequest, filters: Query[StatsFilters]):
    """Aggregates the per-minute usage the worker flushes (every few seconds) for the
    versions you can see. Percentiles come from summed histograms (latency; for language
    models also time to first token and tokens/s), so they hold across minutes."""
    return stats_aggregate(user=request.user, **filters.dict())
