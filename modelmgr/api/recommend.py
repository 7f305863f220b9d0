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
    priority: str = Field("balanced", description=f"one of: {PURPOSES}")
    context_length: int | None = Field(
        None, ge=1, le=10_000_000, description="tokens of KV cache to plan for (default 4096)"
    )
    parallel: int = Field(1, ge=1, le=1024, description="concurrent sequences (KV cache)")
    limit: int = Field(10, ge=1, le=MAX_RESULTS)


class RecommendationOut(Schema):
    rank: int
    ref: str
    model: str
    owner: str
    version: str
    fits: bool = Field(description="the estimate fits the available memory")
    estimated_bytes: int = Field(description="weights + KV cache + 10 % (see reasons)")
    score: float
    family: str
    parameter_size: str
    parameter_count: int | None
    purpose: str
    requests: int = Field(description="served requests in the last 30 days")
    success_rate: float | None
    mean_ms: float | None
    reasons: list[str] = Field(description="why it ranks here, in words")


class RecommendOut(Schema):
    task: str
    priority: str
    available_bytes: int
    memory_source: str = Field(description="'request' or 'worker' (its free memory)")
    items: list[RecommendationOut] = Field(description="those that fit first, best first")


@router.post("/recommend", response=RecommendOut, summary="Recommend versions for a task")
def recommend_versions(request: HttpRequest, payload: RecommendIn):
    """Rank your deployable versions of ``task`` for the memory there is, with reasons:
    fits (the memory estimate), purpose match, size, measured success rate and speed."""
    return recommend(user=request.user, **payload.dict())
