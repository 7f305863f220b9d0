"""Roll a slot back to its previous version: a switch whose target is the previous one."""

from __future__ import annotations

from modelmgr.deploy.conflicts import last_change, version_matches
from modelmgr.deploy.errors import SlotErrors
from modelmgr.deploy.refusals import refusals_audited
from modelmgr.deploy.switch import SwitchResult, switch_targets
from modelmgr.exceptions import NotFound
from modelmgr.models import Slot


def slot_rollback(
    *,
    slot_name: str,
    actor,
    actor_label: str | None = None,
    to: str | None = None,
    expected: str | None = None,
    switch_id: str | None = None,
) -> SwitchResult:
    """Switch ``slot_name`` back to its previous version (409 when it has none).

    ``to`` (optional) is the version the caller means to roll back to ("Roll back to
    X"): when the slot's previous version is no longer X the rollback is refused (409,
    naming who changed the slot), never sent to whatever is previous at click time.
    ``expected`` (optional) is the version the caller saw the slot serve, as in
    ``slots_switch``.

    Same path as ``slots_switch``; afterwards the version rolled away from becomes the
    previous one, so a second rollback undoes the first.
    """
    refusals = {
        "actor": actor,
        "actor_label": actor_label,
        "action": "slot.rollback",
        "targets": {slot_name: to},
    }
    with refusals_audited(**refusals):
        slot = (
            Slot.objects.select_related("previous_version__model__owner")
            .filter(name=slot_name)
            .first()
        )
        if slot is None:
            raise NotFound(f"there is no slot named {slot_name!r}")
        if to is not None and not isinstance(to, str):
            raise SlotErrors(
                f"\"to\" is the 'name@version' to roll back to, got {to!r}",
                slots={slot_name: "malformed to"},
                status=422,
            )
        if to and not version_matches(slot.previous_version, to):
            now = slot.previous_version.ref if slot.previous_version else "none"
            cause = (
                f"slot {slot_name} can no longer roll back to {to}: its previous version is "
                f"{now} ({last_change(slot)}); look again and choose anew"
            )
            raise SlotErrors(
                f"rollback refused, nothing changed: {cause}", slots={slot_name: cause}, status=409
            )
        if slot.previous_version is None:
            raise SlotErrors(
                f"slot {slot_name} has no previous version to roll back to",
                slots={slot_name: "no previous version"},
                status=409,
            )
    return switch_targets(
        targets={slot_name: slot.previous_version},
        actor=actor,
        actor_label=actor_label,
        action="slot.rollback",
        expected={slot_name: expected} if expected is not None else None,
        switch_id=switch_id,
    )
