"""/slots/{slot}/drift: data drift of what a slot serves (modelmgr.deploy.drift)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.deploy import drift as drift_services

router = Router(tags=["drift"])


class ReferenceIn(Schema):
    inputs: Any = Field(
        description="{input name: nested lists}, one row per sample (the first axis), at "
        "least 20 rows; the same format as predict",
        examples=[{"x": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.0, 0.2]]}],
    )


class ResetIn(Schema):
    reference_requests: Any = Field(
        None,
        description="requests that make the new reference (null: MODELMGR_DRIFT_REFERENCE)",
        examples=[500],
    )


@router.get("/slots/{slot}/drift", response=dict[str, Any], summary="Data drift of a slot")
def get_drift(request: HttpRequest, slot: str):
    """``status`` is ``no data``, ``learning`` (the reference is being collected),
    ``collecting`` (too few requests since), ``ok``, ``warning`` or ``drift``; ``moved``
    names the features that moved; ``versions`` holds, per version the worker watches
    (the served one first), each feature's PSI and Kolmogorov–Smirnov statistic and
    p-value, and the reference and current histograms of the most moved features."""
    return drift_services.slot_drift(slot_name=slot)


@router.post(
    "/slots/{slot}/drift/reference",
    response=dict[str, Any],
    summary="Upload a reference sample for a slot's drift",
)
def set_reference(request: HttpRequest, slot: str, payload: ReferenceIn):
    """The served version's reference becomes this sample at once (the model runs on it
    for the outputs' reference). 422 naming the problem for a malformed sample, 409 when
    the slot serves nothing."""
    return drift_services.slot_drift_reference_set(
        slot_name=slot,
        inputs=payload.inputs,
        actor=request.user,
        actor_label=request_actor_label(request),
    )


@router.post("/slots/{slot}/drift/reset", response=dict[str, Any], summary="Reset a slot's drift")
def reset(request: HttpRequest, slot: str, payload: ResetIn | None = None):
    """Forget the slot's references; the next requests make the new one."""
    return drift_services.slot_drift_reset(
        slot_name=slot,
        reference_requests=payload.reference_requests if payload else None,
        actor=request.user,
        actor_label=request_actor_label(request),
    )
