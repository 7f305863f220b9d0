"""Slots: create, change, delete (audited), and their reads.

Creating, changing and deleting slots is for staff, superusers and users with the
matching ``modelmgr.add_slot`` / ``change_slot`` / ``delete_slot`` permission. Which
version a slot serves changes only through a switch (modelmgr.deploy.switch).
"""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from modelmgr.audit import audit_record
from modelmgr.deploy.batching import batching_snapshot
from modelmgr.deploy.contract import clean_contract, version_fits_slot
from modelmgr.deploy.llm_limits import llm_limits_snapshot
from modelmgr.deploy.plan import as_actor
from modelmgr.exceptions import Forbidden, InUse, NotFound, VersionConflict
from modelmgr.models import ModelVersion, Slot, Task
from modelmgr.registry.validation import InvalidInput

SLOT_NAME_MAX = 64


def _require(actor, perm: str, doing: str) -> None:
    actor = as_actor(actor)
    if not (actor.is_staff or actor.is_superuser or actor.has_perm(f"modelmgr.{perm}")):
        raise Forbidden(f"only staff (or users with the {perm} permission) may {doing}")


def _clean_task(task: Any) -> str:
    if task not in Task.values:
        raise InvalidInput(f"task {task!r} is not one of: {', '.join(Task.values)}")
    return task


def _clean_group(group: Any) -> str:
    if not isinstance(group, str) or not re.fullmatch(r"[-a-zA-Z0-9_]{0,64}", group):
        raise InvalidInput(
            f"worker_group {group!r} is not a group name (letters, digits, - and _, "
            'at most 64; "" = every worker)'
        )
    return group


def _clean_name(name: Any) -> str:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_slug

    if not isinstance(name, str) or not name or len(name) > SLOT_NAME_MAX:
        raise InvalidInput(f"a slot name is 1-{SLOT_NAME_MAX} characters, got {name!r}")
    try:
        validate_slug(name)
    except ValidationError:
        raise InvalidInput(
            f"slot name {name!r} may hold only letters, digits, '-' and '_'"
        ) from None
    return name


def version_summary(version: ModelVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "id": version.pk,
        "ref": version.ref,
        "owner": version.model.owner.get_username(),
        "status": version.status,
    }


def slot_snapshot(slot: Slot) -> dict[str, Any]:
    """What the audit trail records of a slot's settings."""
    return {
        "name": slot.name,
        "task": slot.task,
        "description": slot.description,
        "contract": slot.contract or {},
        "worker_group": slot.worker_group,
    }


def slot_payload(slot: Slot) -> dict[str, Any]:
    return {
        **slot_snapshot(slot),
        "active": version_summary(slot.active_version),
        "previous": version_summary(slot.previous_version),
        "canary": version_summary(slot.canary_version),
        "canary_share": slot.canary_share,
        "shadow": version_summary(slot.shadow_version),
        "batching": batching_snapshot(slot),
        "llm_limits": llm_limits_snapshot(slot),
        "updated_at": slot.updated_at,
    }


def slot_queryset() -> QuerySet:
    return Slot.objects.select_related(
        "active_version__model__owner",
        "previous_version__model__owner",
        "canary_version__model__owner",
        "shadow_version__model__owner",
    ).order_by("name")


def slot_list() -> list[Slot]:
    return list(slot_queryset())


def slot_get(*, name: str) -> Slot:
    slot = slot_queryset().filter(name=name).first()
    if slot is None:
        raise NotFound(f"there is no slot named {name!r}")
    return slot


def slot_create(
    *,
    name: str,
    task: str = Task.OTHER,
    description: str = "",
    contract: dict | None = None,
    actor,
    actor_label: str | None = None,
) -> Slot:
    _require(actor, "add_slot", "create slots")
    name, task = _clean_name(name), _clean_task(task)
    contract = clean_contract(contract)
    with transaction.atomic():
        if Slot.objects.filter(name=name).exists():
            raise VersionConflict(f"a slot named {name!r} already exists")
        try:
            with transaction.atomic():
                slot = Slot.objects.create(
                    name=name, task=task, description=description or "", contract=contract
                )
        except IntegrityError:
            raise VersionConflict(f"a slot named {name!r} already exists") from None
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.create",
            target_type="slot",
            target=name,
            after=slot_snapshot(slot),
        )
    return slot_get(name=name)


def slot_update(
    *,
    slot_name: str,
    actor,
    actor_label: str | None = None,
    task: str | None = None,
    description: str | None = None,
    contract: dict | None = None,
    worker_group: str | None = None,
) -> Slot:
    """Change task, description, contract or placement (None leaves a field as it is).

    ``worker_group`` restricts the slot to the workers of that group ("" = every
    worker); the workers are nudged to reconcile, so those outside it unload it.

    A task or contract that the active (or canary) version would not fit is refused
    with 409 naming the problems: the slot must never describe something it does not
    serve.
    """
    _require(actor, "change_slot", "change slots")
    with transaction.atomic():
        slot = slot_queryset().select_for_update(of=("self",)).filter(name=slot_name).first()
        if slot is None:
            raise NotFound(f"there is no slot named {slot_name!r}")
        before = slot_snapshot(slot)
        if task is not None:
            slot.task = _clean_task(task)
        if description is not None:
            slot.description = description
        if contract is not None:
            slot.contract = clean_contract(contract)
        if worker_group is not None:
            slot.worker_group = _clean_group(worker_group)
        for version in (slot.active_version, slot.canary_version):
            if version is None:
                continue
            problems = version_fits_slot(version, slot)
            if problems:
                raise VersionConflict(
                    f"slot {slot_name} serves {version.ref}, which would not fit the change: "
                    + "; ".join(problems)
                )
        after = slot_snapshot(slot)
        if after == before:
            return slot
        slot.save(update_fields=["task", "description", "contract", "worker_group", "updated_at"])
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.update",
            target_type="slot",
            target=slot_name,
            before=before,
            after=after,
        )
        if before["worker_group"] != after["worker_group"]:
            from modelmgr.deploy.workers import worker_nudge

            transaction.on_commit(worker_nudge)
    return slot_get(name=slot_name)


def slot_delete(*, slot_name: str, actor, actor_label: str | None = None) -> None:
    """Delete an idle slot; one that serves a version is refused (409): clear it first."""
    _require(actor, "delete_slot", "delete slots")
    with transaction.atomic():
        slot = slot_queryset().select_for_update(of=("self",)).filter(name=slot_name).first()
        if slot is None:
            raise NotFound(f"there is no slot named {slot_name!r}")
        serving = slot.active_version or slot.canary_version
        if serving is not None:
            raise InUse(
                f"slot {slot_name} serves {serving.ref}; stop it first with "
                f'POST /api/v1/switch {{"{slot_name}": null}}'
            )
        before = slot_snapshot(slot)
        slot.delete()
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.delete",
            target_type="slot",
            target=slot_name,
            before=before,
        )
