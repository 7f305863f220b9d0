"""/slots: serving roles, their contracts and the versions they serve; rollback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.api.switch import SwitchError, SwitchOut
from modelmgr.deploy import slots as slot_services
from modelmgr.deploy.switch import slot_rollback
from modelmgr.models import Task

router = Router(tags=["slots"])

CONTRACT_DOC = (
    '{"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}: names must exist, '
    "dtypes and fixed dims match; symbolic (string) or null dims match anything"
)


class VersionRefOut(Schema):
    id: int
    ref: str
    owner: str
    status: str


class SlotOut(Schema):
    name: str
    task: str
    description: str
    contract: dict[str, Any]
    active: VersionRefOut | None
    previous: VersionRefOut | None
    canary: VersionRefOut | None
    canary_share: float
    updated_at: datetime


class SlotIn(Schema):
    name: str = Field(description="slug, unique", examples=["detector"])
    task: str = Field(
        Task.OTHER, description=f"one of: {', '.join(Task.values)} ('other' accepts any model)"
    )
    description: str = ""
    contract: dict[str, Any] | None = Field(None, description=CONTRACT_DOC)


class SlotPatch(Schema):
    task: str | None = None
    description: str | None = None
    contract: dict[str, Any] | None = Field(None, description=CONTRACT_DOC + "; {} removes it")


@router.get("/slots", response=list[SlotOut], summary="List slots")
def list_slots(request: HttpRequest):
    return [slot_services.slot_payload(slot) for slot in slot_services.slot_list()]


@router.post("/slots", response={201: SlotOut}, summary="Create a slot (staff)")
def create_slot(request: HttpRequest, payload: SlotIn):
    slot = slot_services.slot_create(
        name=payload.name,
        task=payload.task,
        description=payload.description,
        contract=payload.contract,
        actor=request.user,
        actor_label=request_actor_label(request),
    )
    return Status(201, slot_services.slot_payload(slot))


@router.get("/slots/{slot}", response=SlotOut, summary="Show a slot")
def get_slot(request: HttpRequest, slot: str):
    return slot_services.slot_payload(slot_services.slot_get(name=slot))


@router.patch("/slots/{slot}", response=SlotOut, summary="Change task, description, contract")
def update_slot(request: HttpRequest, slot: str, payload: SlotPatch):
    """A change the served version would not fit is refused (409) naming the problems."""
    changes = payload.dict(exclude_unset=True)
    updated = slot_services.slot_update(
        slot_name=slot,
        actor=request.user,
        actor_label=request_actor_label(request),
        task=changes.get("task"),
        description=changes.get("description"),
        contract=changes.get("contract"),
    )
    return slot_services.slot_payload(updated)


@router.delete("/slots/{slot}", response={204: None}, summary="Delete an idle slot (staff)")
def delete_slot(request: HttpRequest, slot: str):
    slot_services.slot_delete(
        slot_name=slot, actor=request.user, actor_label=request_actor_label(request)
    )
    return Status(204, None)


@router.post(
    "/slots/{slot}/rollback",
    response={
        200: SwitchOut,
        403: SwitchError,
        404: SwitchError,
        409: SwitchError,
        503: SwitchError,
    },
    summary="Switch a slot back to its previous version",
)
def rollback_slot(request: HttpRequest, slot: str):
    """The same all-or-nothing path as /switch; 409 when the slot has no previous version."""
    result = slot_rollback(
        slot_name=slot, actor=request.user, actor_label=request_actor_label(request)
    )
    return result.as_dict()
