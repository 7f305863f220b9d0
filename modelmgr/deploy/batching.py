"""Dynamic batching settings of a slot: check, change (audited), and what they read as.

The worker stacks concurrent requests to a batching slot into one run along the first
dimension (inference.batching), which is only right for a model whose every input and
output has a dynamic first dimension: a fixed first dimension (say 1) cannot take a
stack, and a model whose signature records no shape is not known to take one. So
batching is refused for a slot whose active version's signature does not show it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from inference.signature import batch_dim_problem
from modelmgr.audit import audit_record
from modelmgr.deploy.workers import worker_nudge
from modelmgr.exceptions import NotFound, VersionConflict
from modelmgr.models import Slot
from modelmgr.registry.validation import InvalidInput

MAX_BATCH_SIZE = 1024
# A request never waits longer than this for others to join it: a second is already
# far past what batching can win back.
MAX_QUEUE_DELAY_US = 1_000_000
MAX_PREFERRED = 16


def batching_snapshot(slot: Slot) -> dict[str, Any]:
    return {
        "max_batch_size": slot.max_batch_size,
        "max_queue_delay_us": slot.max_queue_delay_us,
        "preferred_batch_sizes": list(slot.preferred_batch_sizes or []),
    }


def _int_in(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def clean_batching(
    max_batch_size: Any, max_queue_delay_us: Any, preferred_batch_sizes: Any
) -> dict[str, Any]:
    size = _int_in("max_batch_size", max_batch_size, 0, MAX_BATCH_SIZE)
    delay = _int_in("max_queue_delay_us", max_queue_delay_us, 0, MAX_QUEUE_DELAY_US)
    # Off (0 or 1) forgets the preferred sizes: they only mean something under a maximum.
    preferred = (preferred_batch_sizes or []) if size > 1 else []
    if not isinstance(preferred, list) or len(preferred) > MAX_PREFERRED:
        raise InvalidInput(
            f"preferred_batch_sizes must be a list of at most {MAX_PREFERRED} sizes, "
            f"got {preferred_batch_sizes!r}"
        )
    for value in preferred:
        if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= size:
            raise InvalidInput(
                f"each preferred batch size must be an integer from 2 to max_batch_size "
                f"({size}), got {value!r}"
            )
    return {
        "max_batch_size": size,
        "max_queue_delay_us": delay,
        "preferred_batch_sizes": sorted(set(preferred)),
    }


def batching_checked(
    slot: Slot,
    *,
    max_batch_size: Any = None,
    max_queue_delay_us: Any = None,
    preferred_batch_sizes: Any = None,
) -> dict[str, Any]:
    """The slot's batching with these changes (None leaves a setting as it is), checked.

    1. Ranges (422 naming the setting).
    2. Turning batching on (max_batch_size > 1) needs an active version whose signature
       has a dynamic first dimension in every input and output (409 naming why not).
    """
    current = batching_snapshot(slot)
    wanted = clean_batching(
        current["max_batch_size"] if max_batch_size is None else max_batch_size,
        current["max_queue_delay_us"] if max_queue_delay_us is None else max_queue_delay_us,
        current["preferred_batch_sizes"]
        if preferred_batch_sizes is None
        else preferred_batch_sizes,
    )
    if wanted["max_batch_size"] > 1:
        for version in (slot.active_version, slot.canary_version):
            if version is None:
                continue
            problem = batch_dim_problem(version.signature)
            if problem:
                raise VersionConflict(
                    f"slot {slot.name} cannot batch: it serves {version.ref}, and {problem}"
                )
        if slot.active_version is None:
            raise VersionConflict(
                f"slot {slot.name} cannot batch: it serves no version, and batching "
                "depends on the served model's signature (switch a version in first)"
            )
    return wanted


def slot_batching_set(
    *,
    slot_name: str,
    actor,
    actor_label: str | None = None,
    max_batch_size: Any = None,
    max_queue_delay_us: Any = None,
    preferred_batch_sizes: Any = None,
) -> Slot:
    """Change a slot's batching (checked by ``batching_checked``); audited as
    ``slot.batching``; the worker is nudged after the commit to apply it at once (and
    reads it on its periodic reconcile anyway)."""
    from modelmgr.deploy.slots import _require, slot_get, slot_queryset

    _require(actor, "change_slot", "change slots")
    with transaction.atomic():
        slot = slot_queryset().select_for_update(of=("self",)).filter(name=slot_name).first()
        if slot is None:
            raise NotFound(f"there is no slot named {slot_name!r}")
        before = batching_snapshot(slot)
        wanted = batching_checked(
            slot,
            max_batch_size=max_batch_size,
            max_queue_delay_us=max_queue_delay_us,
            preferred_batch_sizes=preferred_batch_sizes,
        )
        if wanted == before:
            return slot
        for field, value in wanted.items():
            setattr(slot, field, value)
        # Not updated_at: the page shows it as when the slot's serving last changed,
        # which batching does not change.
        slot.save(update_fields=list(wanted))
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.batching",
            target_type="slot",
            target=slot_name,
            before=before,
            after=wanted,
        )
        transaction.on_commit(worker_nudge)
    return slot_get(name=slot_name)
