"""Lost-update protection for switches and rollbacks: the version a caller saw.

A switch may carry, per slot, the version the caller expects the slot to serve now
(like an ``If-Match``): what their page showed, or what their script read. When the
slot serves something else, someone changed it since; the switch is refused (409)
naming who changed it and when, so the caller decides again instead of silently
reverting the other person's change.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from modelmgr.deploy.errors import SlotErrors
from modelmgr.models import AuditEvent, ModelVersion, Slot

# The audited actions that change what a slot serves.
SERVING_ACTIONS = ("slot.switch", "slot.switch.forced", "slot.rollback")
# How many recent serving changes are searched for a slot's last one.
RECENT_CHANGES = 200


def version_matches(version: ModelVersion | None, expected: str | None) -> bool:
    """Whether ``expected`` names ``version``: ``name@version``, ``owner/name@version``,
    or None/"" for an empty slot."""
    if not expected:
        return version is None
    if version is None:
        return False
    owner = version.model.owner.get_username()
    return expected.strip() in (version.ref, f"{owner}/{version.ref}")


def last_change(slot: Slot) -> str:
    """Who last changed what ``slot`` serves, and when, as a person reads it."""
    rows = (
        AuditEvent.objects.filter(
            target_type="slot", action__in=SERVING_ACTIONS, outcome=AuditEvent.Outcome.OK
        )
        .filter(target__contains=slot.name)
        .order_by("-created_at", "-id")[:RECENT_CHANGES]
    )
    for row in rows:
        # A switch of several slots is one row whose target lists them, comma-separated.
        if slot.name in row.target.split(","):
            return f"changed by {row.actor_label or 'system'} at {_when(row.created_at)}"
    return f"changed at {_when(slot.updated_at)}"


def _when(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clean_expected(expected: Any, *, targets: dict[str, Any]) -> dict[str, str | None]:
    """``expected`` as {slot: ref or None}; 422 when malformed or naming slots the switch
    does not touch (an expectation about a slot left alone would check nothing)."""
    if expected is None:
        return {}
    if not isinstance(expected, dict):
        raise SlotErrors(
            f'"expected" is an object of slot -> the version it serves now, got {expected!r}',
            status=422,
        )
    causes: dict[str, tuple[int, str]] = {}
    for name, ref in expected.items():
        if name not in targets:
            causes[name] = (422, "named in expected but not part of the switch")
        elif ref is not None and not isinstance(ref, str):
            causes[name] = (422, f"expected a 'name@version' string or null, got {ref!r}")
    if causes:
        raise SlotErrors.from_causes("switch refused, nothing changed", causes)
    return {name: ref or None for name, ref in expected.items()}


def check_expected(expected: dict[str, str | None]) -> None:
    """Refuse (409) when a slot no longer serves the version its caller saw."""
    if not expected:
        return
    slots = Slot.objects.select_related("active_version__model__owner").filter(
        name__in=list(expected)
    )
    causes: dict[str, tuple[int, str]] = {}
    for slot in slots:
        seen = expected[slot.name]
        if version_matches(slot.active_version, seen):
            continue
        now = slot.active_version.ref if slot.active_version else "nothing"
        causes[slot.name] = (
            409,
            f"slot {slot.name} serves {now}, not {seen or 'nothing'} as expected: "
            f"{last_change(slot)}; look again and choose anew",
        )
    if causes:
        raise SlotErrors.from_causes("switch refused, the slots changed meanwhile", causes)
