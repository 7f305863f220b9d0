"""/slots: serving roles, their contracts and the versions they serve; rollback."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.api.switch import SwitchError, SwitchOut
from modelmgr.deploy import slots as slot_services
from modelmgr.deploy.batching import MAX_BATCH_SIZE, MAX_QUEUE_DELAY_US, slot_batching_set
from modelmgr.deploy.errors import SlotErrors
from modelmgr.deploy.llm_limits import MAX_NUM_PARALLEL, MAX_QUEUE, UNSET, slot_llm_limits_set
from modelmgr.deploy.rollback import slot_rollback
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


class BatchingOut(Schema):
    max_batch_size: int
    max_queue_delay_us: int
    preferred_batch_sizes: list[int]


class BatchingIn(Schema):
    max_batch_size: Any = Field(
        None, description=f"0 or 1 = off, up to {MAX_BATCH_SIZE}", examples=[16]
    )
    max_queue_delay_us: Any = Field(
        None,
        description=f"longest a request waits for others to join it, 0-{MAX_QUEUE_DELAY_US}",
        examples=[2000],
    )
    preferred_batch_sizes: Any = Field(
        None, description="sizes run as soon as they are reached (2..max_batch_size)"
    )


class LlmLimitsOut(Schema):
    num_parallel: int
    max_queue: int | None


class LlmLimitsIn(Schema):
    num_parallel: Any = Field(
        None,
        description=f"generations at once, 1-{MAX_NUM_PARALLEL}; 0 = MODELMGR_LLM_NUM_PARALLEL",
        examples=[2],
    )
    max_queue: Any = Field(
        None,
        description=f"requests that may wait for a place, 0-{MAX_QUEUE} (0: none); "
        "null = MODELMGR_LLM_MAX_QUEUE",
        examples=[8],
    )


class SlotOut(Schema):
    name: str
    task: str
    description: str
    contract: dict[str, Any]
    active: VersionRefOut | None
    previous: VersionRefOut | None
    canary: VersionRefOut | None
    canary_share: float
    shadow: VersionRefOut | None = None
    batching: BatchingOut
    llm_limits: LlmLimitsOut
    worker_group: str = Field("", description='the workers that serve it; "" = every worker')
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
    worker_group: Any = Field(
        None,
        description="placement: only workers of this group (MODELMGR_WORKER_GROUP) load the "
        'slot; "" = every worker',
        examples=["gpu"],
    )


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


@router.patch(
    "/slots/{slot}", response=SlotOut, summary="Change task, description, contract, worker group"
)
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
        worker_group=changes.get("worker_group"),
    )
    return slot_services.slot_payload(updated)


@router.put("/slots/{slot}/batching", response=SlotOut, summary="Set dynamic batching")
def set_batching(request: HttpRequest, slot: str, payload: BatchingIn):
    """Settings left out stay as they are. Refused with 409 naming the reason when the
    slot's model has no dynamic first (batch) dimension in every input and output, 422
    for a value out of range. The worker applies it without a restart."""
    changes = payload.dict(exclude_unset=True)
    updated = slot_batching_set(
        slot_name=slot,
        actor=request.user,
        actor_label=request_actor_label(request),
        max_batch_size=changes.get("max_batch_size"),
        max_queue_delay_us=changes.get("max_queue_delay_us"),
        preferred_batch_sizes=changes.get("preferred_batch_sizes"),
    )
    return slot_services.slot_payload(updated)


@router.put(
    "/slots/{slot}/llm-limits", response=SlotOut, summary="Set generation limits (language models)"
)
def set_llm_limits(request: HttpRequest, slot: str, payload: LlmLimitsIn):
    """Generations at once on the slot and requests that may wait; beyond that the
    serving port answers 503 with Retry-After. Settings left out stay as they are; 0
    parallel / null queue follow MODELMGR_LLM_NUM_PARALLEL / MODELMGR_LLM_MAX_QUEUE.
    422 for a value out of range. The worker applies it without a restart."""
    changes = payload.dict(exclude_unset=True)
    updated = slot_llm_limits_set(
        slot_name=slot,
        actor=request.user,
        actor_label=request_actor_label(request),
        num_parallel=changes.get("num_parallel", UNSET),
        max_queue=changes.get("max_queue", UNSET),
    )
    return slot_services.slot_payload(updated)


@router.delete("/slots/{slot}", response={204: None}, summary="Delete an idle slot (staff)")
def delete_slot(request: HttpRequest, slot: str):
    slot_services.slot_delete(
        slot_name=slot, actor=request.user, actor_label=request_actor_label(request)
    )
    return Status(204, None)


_ROLLBACK_BODY_DOC = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "to": {
                            "type": ["string", "null"],
                            "description": "the version to roll back to (name@version): "
                            "refused with 409 when it is no longer the slot's previous one",
                        },
                        "expected": {
                            "type": ["string", "null"],
                            "description": "the version the caller saw the slot serve; "
                            "refused with 409 (naming who changed it) when it serves another",
                        },
                    },
                },
                "example": {"to": "yolo-v8-small@1.0", "expected": "yolo-v8-small@1.1"},
            }
        },
    }
}


def _rollback_body(request: HttpRequest) -> dict[str, Any]:
    """The optional body: {"to", "expected"}; none at all rolls back to the previous."""
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        # An empty form (a bare POST from a form or a test client) says nothing.
        if request.content_type == "multipart/form-data" and not (request.POST or request.FILES):
            return {}
        raise SlotErrors(f"the body is not JSON: {exc}", status=422) from None
    if not isinstance(body, dict) or set(body) - {"to", "expected"}:
        raise SlotErrors(
            'send {"to": "<name@version>", "expected": "<the version it serves now>"} '
            f"(both optional), got {request.body[:200]!r}",
            status=422,
        )
    for key in ("to", "expected"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise SlotErrors(f'"{key}" is a name@version string, got {body[key]!r}', status=422)
    return body


@router.post(
    "/slots/{slot}/rollback",
    response={
        200: SwitchOut,
        403: SwitchError,
        404: SwitchError,
        409: SwitchError,
        422: SwitchError,
        503: SwitchError,
    },
    summary="Switch a slot back to its previous version",
    openapi_extra=_ROLLBACK_BODY_DOC,
)
def rollback_slot(request: HttpRequest, slot: str):
    """The same all-or-nothing path as /switch; 409 when the slot has no previous version.

    With ``{"to": X}`` it goes to X or is refused (409) when X is no longer the previous
    version; with ``{"expected": Y}`` it is refused (409, naming who changed the slot)
    when the slot no longer serves Y. Refusals are audited (outcome ``refused``).
    """
    body = _rollback_body(request)
    result = slot_rollback(
        slot_name=slot,
        actor=request.user,
        actor_label=request_actor_label(request),
        to=body.get("to"),
        expected=body.get("expected"),
    )
    return result.as_dict()
