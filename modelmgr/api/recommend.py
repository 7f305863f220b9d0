"""POST /recommend: which versions to run for a task in the memory there is."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import TokenAuth, session_auth
from modelmgr.api.schemas import PURPOSES, TASKS
from modelmgr.models import ApiToken
from modelmgr.registry.recommend import MAX_RESULTS, recommend

# A POST that only reads: the read scope is enough (like predict).
router = Router(tags=["recommend"], auth=[TokenAuth(scope=ApiToken.Scope.READ), session_auth])


class RecommendIn(Schema):
    task: str = Field("llm", description=f"one of: {TASKS}")
    available_vram_gb: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="memory to fit in; default: the worker's free memory (422 if unknown)",
    )
    available_bytes: int | None = Field(
        None,
        gt=0,
        le=10**18,
        description="memory to fit in, in bytes (instead of available_vram_gb)",
    )
    priority: str = Field("balanced", description=f"one of: {PURPOSES}")
    context_length: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description=(
            "tokens of KV cache to plan for (default: the worker's MODELMGR_LLM_CONTEXT, "
            "else the model's own)"
        ),
    )
    parallel: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="concurrent sequences (KV cache); default: MODELMGR_LLM_NUM_PARALLEL",
    )
    limit: int = Field(10, ge=1, le=MAX_RESULTS)


class RecommendationOut(Schema):
    rank: int
    ref: str
    model: str
    owner: str
    version: str
    fits: bool = Field(description="the estimate fits the available memory")
    estimated_bytes: int = Field(
        description="as the worker counts it at admission: weights + KV cache (see reasons)"
    )
    score: float
    family: str
    parameter_size: str
    parameter_count: int | None
    purpose: str
    requests: int = Field(description="served requests in the last 30 days")
    success_rate: float | None
    mean_ms: float | None = Field(description="mean latency of successful requests")
    tokens_per_s: float | None = Field(
        description="measured generation speed, p50 (language models); ranks speed when known"
    )
    ttft_ms: float | None = Field(description="measured time to first token, p50")
    accuracy: float | None = Field(
        None, description="tensor models: val_accuracy, else test_accuracy, else metrics"
    )
    latency_ms: float | None = Field(
        None, description="tensor models: profiled p50 at the smallest batch, else measured mean"
    )
    throughput_per_s: float | None = Field(
        None, description="tensor models: the profile's best inferences/s"
    )
    reasons: list[str] = Field(description="why it ranks here, in words")


class RecommendOut(Schema):
    task: str
    priority: str
    available_bytes: int
    memory_source: str = Field(
        description="'request', or 'worker': the least free memory among the up workers"
    )
    items: list[RecommendationOut] = Field(description="those that fit first, best first")


@router.post("/recommend", response=RecommendOut, summary="Recommend versions for a task")
def recommend_versions(request: HttpRequest, payload: RecommendIn):
    """Rank your deployable versions of ``task`` for the memory there is, with reasons:
    fits (the memory estimate), purpose match, size, measured success rate and speed.
    Tensor tasks (detector, classifier, ...) rank by accuracy, profiled latency and
    throughput (POST /versions/{ref}/profile) or measured latency, and memory: speed
    favours the fastest, quality the most accurate."""
    return recommend(user=request.user, **payload.dict())
