"""Before a switch: the validation report, the fit preview, and a slot's quality gate.

- ``GET /versions/{ref}/report?slot=&load=``: every check of a version against a slot.
- ``POST /switch/preview``: the body of a switch; what it would load, need and evict.
- ``GET|PUT /slots/{slot}/gate``: the slot's quality gate and production flag.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import TokenAuth, request_actor_label, session_auth
from modelmgr.api.switch import SwitchError, switch_body
from modelmgr.deploy.gate import slot_gate_set
from modelmgr.deploy.preview import switch_preview
from modelmgr.deploy.report import version_report
from modelmgr.deploy.slots import slot_get
from modelmgr.models import ApiToken
from modelmgr.registry import selectors

router = Router(tags=["validation"])


class Detail(Schema):
    detail: str


class CheckOut(Schema):
    name: str = Field(
        description="format, contract, signature, dependencies, hardware, quality_gate, load_test"
    )
    status: Literal["ok", "warning", "fail", "skipped"]
    message: str = Field(description="what was found, in words")
    details: Any = Field(
        None,
        description="the figures behind it; for signature, the list of changes "
        "({side, kind: added|removed|renamed|shape|dtype, name, breaking, message, old, new})",
    )


class WorkerAsked(Schema):
    name: str
    reachable: bool
    error: str


class WorkerReach(Schema):
    reachable: bool
    error: str


class WorkersAsked(Schema):
    reachable: bool = Field(description="every worker that serves the slot answered")
    error: str = Field(description="the first error, or why no worker could be asked")
    workers: list[WorkerAsked] = Field(
        description="the up workers serving the slot, each asked for its environment and "
        "memory (the dependencies and hardware checks are the worst worker's)"
    )


class ReportOut(Schema):
    version: str
    slot: str
    serving: str | None = Field(description="what the slot serves now (the diff's baseline)")
    status: Literal["ok", "warning", "fail"] = Field(description="the worst check")
    breaking: bool = Field(description="the signature change breaks callers of the slot")
    switch: Literal["allowed", "needs force", "refused"] = Field(
        description="what a switch to it would meet: refused (format or contract), needs "
        "force (quality gate), allowed"
    )
    worker: WorkersAsked
    checks: list[CheckOut]


@router.get(
    "/versions/{path:ref}/report",
    response={200: ReportOut, 403: Detail, 404: Detail, 422: Detail},
    summary="Validation report of a version against a slot",
)
def report(request: HttpRequest, ref: str, slot: str, load: bool = False):
    """Checks ``ref`` (name@version, owner/name@version, bare name: newest available)
    against ``slot``: format (status, inspection, last verification), contract, the
    signature diff against what the slot serves now (each change breaking or not),
    dependencies against the worker's Python and packages, hardware fit (the estimate
    and min VRAM against the worker's free memory, with the cached models a load would
    evict), the slot's quality gate, and, with ``load=true``, a real load-and-infer test
    in the worker (audited as version.validate). Changes nothing otherwise.
    """
    target = slot_get(name=slot)
    version = selectors.version_resolve(user=request.user, ref=ref)
    return version_report(
        version=version,
        slot=target,
        load=load,
        actor=request.user,
        actor_label=request_actor_label(request),
    )


class SlotPreviewOut(Schema):
    current: str | None
    target: str | None
    unchanged: bool
    load: bool = Field(description="the worker would load this version")
    estimate_bytes: int = Field(description="the registry's estimate (estimate_how says how)")
    estimate_how: str
    needed_bytes: int | None = Field(description="what the worker's pool would reserve")
    loaded: bool | None = Field(description="loaded already (cached): nothing to reserve")
    fits: bool | None
    detail: str
    gate_failures: list[str] = Field(description="quality-gate failures a switch must force")


class EvictionOut(Schema):
    version_id: int
    ref: str
    memory_bytes: int
    last_used: str | None
    for_ref: str = Field(description="the version it makes room for")
    worker: str | None = Field(None, description="the worker that would unload it")


class WorkerFitOut(Schema):
    name: str
    reachable: bool
    error: str
    slots: list[str] = Field(description="the slots of the switch placed on this worker")
    memory: dict[str, Any] | None
    evictions: list[EvictionOut]
    fits: bool | None
    free_after_bytes: int | None


class PreviewOut(Schema):
    slots: dict[str, SlotPreviewOut]
    worker: WorkerReach
    workers: list[WorkerFitOut] = Field(description="each worker the switch would go to")
    memory: dict[str, Any] | None = Field(description="the first worker's budget, used, free")
    evictions: list[EvictionOut] = Field(description="cached models unloaded, in order")
    fits: bool | None = Field(description="fits on every worker (null: one could not be asked)")
    free_after_bytes: int | None = Field(description="the least any worker would have left")


@router.post(
    "/switch/preview",
    response={
        200: PreviewOut,
        403: SwitchError,
        404: SwitchError,
        409: SwitchError,
        422: SwitchError,
    },
    summary="Fit preview of a switch: loads, memory, evictions; nothing changes",
    auth=[TokenAuth(scope=ApiToken.Scope.READ), session_auth],
)
def preview(request: HttpRequest):
    """The same body as ``POST /switch`` (plain or wrapped; ``expected`` and ``force``
    are accepted and ignored). Per slot: what it serves, what it would serve, whether
    that needs a load and how much memory (the worker's estimate and the registry's);
    then the worker's memory now and the cached models (least recently used first, no
    slot serving them, not pinned) that would be evicted, in eviction order. A bad slot
    or version is refused as a switch would be; quality-gate failures are listed, not
    refused. Read scope: nothing changes."""
    assignments, _, _ = switch_body(request)
    return switch_preview(targets=assignments, actor=request.user)


class GateOut(Schema):
    slot: str
    quality_gate: dict[str, str] = Field(description='metric -> "<op> <number>"')
    production: bool = Field(description="accepts only production_ready versions unless forced")


class GateIn(Schema):
    quality_gate: dict[str, Any] | None = Field(
        None,
        description='metric -> "<op> <number>" (op: >=, >, <=, <, ==), e.g. '
        '{"val_accuracy": ">= 0.9"}; a metric is train/val/test_accuracy, train_loss or '
        'a number in metadata["metrics"]; {} removes the gate',
    )
    production: bool | None = None


def _gate(slot) -> dict[str, Any]:
    return {"slot": slot.name, "quality_gate": slot.quality_gate, "production": slot.production}


@router.get("/slots/{slot}/gate", response={200: GateOut, 404: Detail}, summary="A slot's gate")
def get_gate(request: HttpRequest, slot: str):
    return _gate(slot_get(name=slot))


@router.put(
    "/slots/{slot}/gate",
    response={200: GateOut, 403: Detail, 404: Detail, 422: Detail},
    summary="Set a slot's quality gate and production flag (staff)",
)
def set_gate(request: HttpRequest, slot: str, payload: GateIn):
    """Fields left out stay as they are. Audited as slot.gate."""
    changes = payload.dict(exclude_unset=True)
    updated = slot_gate_set(
        slot=slot_get(name=slot),
        quality_gate=changes.get("quality_gate"),
        production=changes.get("production"),
        actor=request.user,
        actor_label=request_actor_label(request),
    )
    return _gate(updated)
