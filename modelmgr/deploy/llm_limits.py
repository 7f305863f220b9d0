"""Per-slot limits of a language model slot: generations at once and the queue behind.

The worker's gate (inference.serving.generation) admits ``num_parallel`` generations
of a slot at once and lets ``max_queue`` more wait; beyond that a request is refused
with 503 and Retry-After (Ollama's OLLAMA_NUM_PARALLEL / OLLAMA_MAX_QUEUE). A slot that
sets nothing (0 / None) follows MODELMGR_LLM_NUM_PARALLEL / MODELMGR_LLM_MAX_QUEUE.
A change is audited and the worker applies it on its next reconcile, which the change
asks for at once: no restart, generations under way go on.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.deploy.workers import worker_nudge
from modelmgr.exceptions import NotFound
from modelmgr.models import Slot
from modelmgr.registry.validation import InvalidInput

MAX_NUM_PARALLEL = 64
MAX_QUEUE = 4096


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


# "Leave this setting as it is" (None is a value: max_queue None = the default).
UNSET: Any = _Unset()


def llm_limits_snapshot(slot: Slot) -> dict[str, Any]:
    return {"num_parallel": slot.llm_num_parallel, "max_queue": slot.llm_max_queue}


def _int_in(name: str, value: Any, low: int, high: int, default: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(
            f"{name} must be an integer from {low} to {high} ({default}), got {value!r}"
        )
    return value


def clean_llm_limits(num_parallel: Any, max_queue: Any) -> dict[str, Any]:
    """num_parallel 0..MAX_NUM_PARALLEL (0 or None = the default); max_queue None (the default)
    or 0..MAX_QUEUE (0: no one waits). InvalidInput (422) naming the setting."""
    parallel = _int_in(
        "num_parallel",
        0 if num_parallel is None else num_parallel,
        0,
        MAX_NUM_PARALLEL,
        "0 = MODELMGR_LLM_NUM_PARALLEL",
    )
    queue = (
        None
        if max_queue is None
        else _int_in("max_queue", max_queue, 0, MAX_QUEUE, "null = MODELMGR_LLM_MAX_QUEUE")
    )
    return {"num_parallel": parallel, "max_queue": queue}


def llm_limits_checked(
    slot: Slot, *, num_parallel: Any = UNSET, max_queue: Any = UNSET
) -> dict[str, Any]:
    """The slot's limits with these changes (UNSET leaves a setting as it is), checked."""
    current = llm_limits_snapshot(slot)
    return clean_llm_limits(
        current["num_parallel"] if num_parallel is UNSET else num_parallel,
        current["max_queue"] if max_queue is UNSET else max_queue,
    )


def slot_llm_limits_set(
    *,
    slot_name: str,
    actor,
    actor_label: str | None = None,
    num_parallel: Any = UNSET,
    max_queue: Any = UNSET,
) -> Slot:
    """Change a slot's generation limits; audited as ``slot.llm_limits``; the worker is
    nudged after the commit to apply them at once (its periodic reconcile reads them
    anyway)."""
    from modelmgr.deploy.slots import _require, slot_get, slot_queryset

    _require(actor, "change_slot", "change slots")
    with transaction.atomic():
        slot = slot_queryset().select_for_update(of=("self",)).filter(name=slot_name).first()
        if slot is None:
            raise NotFound(f"there is no slot named {slot_name!r}")
        before = llm_limits_snapshot(slot)
        wanted = llm_limits_checked(slot, num_parallel=num_parallel, max_queue=max_queue)
        if wanted == before:
            return slot
        slot.llm_num_parallel = wanted["num_parallel"]
        slot.llm_max_queue = wanted["max_queue"]
        # Not updated_at: the page shows it as when the slot's serving last changed.
        slot.save(update_fields=["llm_num_parallel", "llm_max_queue"])
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.llm_limits",
            target_type="slot",
            target=slot_name,
            before=before,
            after=wanted,
        )
        transaction.on_commit(worker_nudge)
    return slot_get(name=slot_name)
