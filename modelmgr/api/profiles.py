"""Watching what serves: a version's profile, and two versions compared.

- ``POST /versions/{ref}/profile``: run a profile on the worker and store it.
- ``GET /versions/{ref}/profile``: the stored (newest) profile.
- ``GET /compare?a=&b=``: metadata, metrics, signature diff, size, profiles and
  measured serving figures side by side with deltas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import TokenAuth, request_actor_label, session_auth
from modelmgr.deploy.compare import compare_versions
from modelmgr.deploy.profile import profile_as_dict, profile_latest, version_profile_run
from modelmgr.exceptions import NotFound
from modelmgr.models import ApiToken
from modelmgr.registry import selectors

router = Router(tags=["profiles"])


class Detail(Schema):
    detail: str


class ProfileIn(Schema):
    batch_sizes: list[Annotated[int, Field(ge=1, le=256)]] | None = Field(
        None,
        description="batch sizes to measure (1..256); default 1, 2, 4, 8 when the "
        "signature's batch dimension is dynamic, else 1 (others are refused)",
    )
    iterations: int | None = Field(None, ge=1, le=1000, description="timed runs per batch size")
    max_seconds: float | None = Field(
        None, ge=0.1, le=120, description="time limit of the whole profile (default 10 s)"
    )
    worker: str = Field(
        "",
        max_length=200,
        description="the registered worker to measure on (GET /api/v1/status lists them); "
        "default: the up worker with the most free memory",
    )


class BatchRow(Schema):
    batch_size: int
    iterations: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    throughput_per_s: float | None = Field(description="inferences (rows) per second")
    seconds: float


class ProfileOut(Schema):
    id: int
    version: str
    device: str = Field(description="where it was measured: cpu, cuda:0")
    device_name: str
    worker_id: str = Field(
        description="the registered worker it ran on (its process id when no worker registers)"
    )
    runtime: str
    provider: str
    dynamic_batch: bool
    load_ms: float
    memory_bytes: int = Field(description="what the loaded copy holds, as the pool counts it")
    measured_bytes: int = Field(description="growth of RSS (CPU) or CUDA memory while profiling")
    results: list[BatchRow]
    duration_s: float
    created_at: datetime
    created_by: str | None


@router.post(
    "/versions/{path:ref}/profile",
    response={
        200: ProfileOut,
        403: Detail,
        404: Detail,
        409: Detail,
        422: Detail,
        502: Detail,
        503: Detail,
        507: Detail,
    },
    summary="Profile a version on the worker (latency, throughput, memory) and store it",
)
def profile_run(request: HttpRequest, ref: str, payload: ProfileIn | None = None):
    """Loads a copy of the version in the worker (never the one a slot serves; evicts
    nothing: 507 "needs X MB, Y MB free" when it does not fit), measures warm latency
    p50/p95/p99 and throughput per batch size, then unloads it. One profile at a time
    per worker (409 while another runs). ``worker`` picks the worker (422 for a name no
    worker registered, 503 when it is down). Stored with the device and time; audited as
    version.profile."""
    version = selectors.version_resolve(user=request.user, ref=ref)
    options = payload.dict() if payload is not None else {}
    profile = version_profile_run(
        version=version,
        actor=request.user,
        actor_label=request_actor_label(request),
        **options,
    )
    return profile_as_dict(profile)


@router.get(
    "/versions/{path:ref}/profile",
    response={200: ProfileOut, 403: Detail, 404: Detail},
    summary="A version's stored profile (the newest)",
    auth=[TokenAuth(scope=ApiToken.Scope.READ), session_auth],
)
def profile_get(request: HttpRequest, ref: str):
    version = selectors.version_resolve(user=request.user, ref=ref)
    profile = profile_latest(version)
    if profile is None:
        raise NotFound(f"{version.ref} has not been profiled yet (POST to profile it)")
    return profile_as_dict(profile)


class CompareOut(Schema):
    a: str
    b: str
    same_version: bool
    metadata: list[dict[str, Any]] = Field(description="[{field, a, b, same}]")
    metrics: list[dict[str, Any]] = Field(description="[{metric, a, b, delta (b-a), ratio}]")
    signature: dict[str, Any] = Field(description="{changes: [...], breaking, same}")
    size: dict[str, Any]
    profile: dict[str, Any] = Field(
        description="{a, b (the stored profiles), by_batch: [{batch_size, p50_ms: {a, b, "
        "delta, ratio}, ...}], memory_bytes, load_ms, notes}"
    )
    stats: dict[str, Any] = Field(description="all-time serving figures {a, b, figures}")


@router.get(
    "/compare",
    response={200: CompareOut, 403: Detail, 404: Detail, 409: Detail, 422: Detail},
    summary="Two versions side by side with deltas (b - a)",
    auth=[TokenAuth(scope=ApiToken.Scope.READ), session_auth],
)
def compare(request: HttpRequest, a: str, b: str):
    """``a`` and ``b`` are refs (name@version, owner/name@version, bare name: newest
    available). The signature diff reads b against a (breaking for a caller of a)."""
    return compare_versions(user=request.user, a=a, b=b)
