"""/slots/{slot}/canary, /shadow, /promote, /abort and /arms: a slot's second versions
and their statistics side by side (modelmgr.deploy.canary, modelmgr.deploy.arms)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.api.switch import SwitchError
from modelmgr.deploy.arms import slot_arms
from modelmgr.deploy.canary import arms_abort, canary_set, shadow_set
from modelmgr.deploy.watch_switch import canary_promote_watched

router = Router(tags=["canary"])
ERRORS = {code: SwitchError for code in (403, 404, 409, 422, 503)}


class CanaryIn(Schema):
    version: Any = Field(..., description="name@version of the canary", examples=["clf@2"])
    share: Any = Field(..., description="share of the requests it answers, 0 to 1", examples=[0.2])
    force: bool = Field(False, description="override the slot's quality gate")


class ShadowIn(Schema):
    version: Any = Field(..., description="name@version every request is mirrored to")


class PromoteIn(Schema):
    force: bool = False
    watch: dict[str, Any] | None = Field(
        None,
        description="optional health watch of the promoted version, as on POST /switch: "
        '{"window_s": 30, "max_error_rate": 0.05, "max_p95_ratio": 1.5, "min_requests": 20}; '
        "a regression rolls back to the version it replaced",
    )


class ArmsChangeOut(Schema):
    slot: str
    switch_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    total_ms: float
    watch: int | None = Field(
        None, description="id of the promotion's health watch (GET /api/v1/switch/watches/{id})"
    )


class ArmsOut(Schema):
    slot: str
    worker: dict[str, Any] = Field(
        description="reachable: every worker serving the slot answered; detail: who did not"
    )
    workers: list[dict[str, Any]] = Field(
        description="each worker serving the slot: name, reachable, detail"
    )
    arms: dict[str, dict[str, Any]] = Field(
        description="primary, canary, shadow: figures summed (percentiles merged) over the workers"
    )


def _who(request: HttpRequest) -> dict[str, Any]:
    return {"actor": request.user, "actor_label": request_actor_label(request)}


@router.post(
    "/slots/{slot}/canary", response={200: ArmsChangeOut, **ERRORS}, summary="Set a canary"
)
def set_canary(request: HttpRequest, slot: str, body: CanaryIn):
    """Serve ``version`` to ``share`` of the slot's requests (a new canary, or a new share
    for the same one). A robot sending ``X-Client-Key`` always gets the same arm. Loaded
    and warmed before it takes traffic; all or nothing; audited as ``slot.canary``."""
    return canary_set(
        slot=slot, ref=body.version, share=body.share, force=body.force, **_who(request)
    )


@router.post(
    "/slots/{slot}/shadow", response={200: ArmsChangeOut, **ERRORS}, summary="Set a shadow"
)
def set_shadow(request: HttpRequest, slot: str, body: ShadowIn):
    """Mirror every request of the slot to ``version``; its answers are compared with the
    active version's (see /arms), never returned. Audited as ``slot.shadow``."""
    return shadow_set(slot=slot, ref=body.version, **_who(request))


@router.post(
    "/slots/{slot}/promote", response={200: ArmsChangeOut, **ERRORS}, summary="Promote the canary"
)
def promote(request: HttpRequest, slot: str, body: PromoteIn | None = None):
    """The canary becomes the active version (the old active one the previous, for a
    rollback) and serves every request. Audited as ``slot.promote``. With ``watch`` the
    promoted version is watched like a health-gated switch (bad thresholds: 422, nothing
    changes); the answer's ``watch`` names the watch."""
    answer, watch = canary_promote_watched(
        slot=slot,
        watch=body.watch if body else None,
        force=bool(body and body.force),
        **_who(request),
    )
    return {**answer, "watch": watch}


@router.post(
    "/slots/{slot}/abort",
    response={200: ArmsChangeOut, **ERRORS},
    summary="Remove canary and shadow",
)
def abort(request: HttpRequest, slot: str):
    """Remove the canary and the shadow; the active version serves every request.
    Audited as ``slot.abort``."""
    return arms_abort(slot=slot, **_who(request))


@router.get(
    "/slots/{slot}/arms", response={200: ArmsOut, 404: SwitchError}, summary="Per-arm statistics"
)
def arms(request: HttpRequest, slot: str):
    """Primary, canary and shadow side by side since each started serving its version:
    requests, errors, error_rate, latency p50/p95/p99 (ms); the canary's share; the
    shadow's agreement with the primary (``agreement``: all outputs equal within
    tolerance; ``argmax_agreement``: the same class per row) over ``compared`` requests."""
    return slot_arms(slot)
