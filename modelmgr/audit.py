"""Audit trail: one append-only row per change, written inside the change's transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from modelmgr.models import AuditEvent


def actor_label_for(user, token=None) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return "system"
    if token is not None:
        return f"{user.get_username()} (token {token.name})"
    return user.get_username()


def audit_record(
    *,
    actor,
    action: str,
    target_type: str,
    target: str,
    before: Any = None,
    after: Any = None,
    outcome: str = AuditEvent.Outcome.OK,
    error: str = "",
    duration_ms: float | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Append one audit row. Call it inside the ``transaction.atomic()`` of the change."""
    if outcome == AuditEvent.Outcome.OK and not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record for a change must run inside its transaction.atomic()")
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label or actor_label_for(user),
        action=action,
        target_type=target_type,
        target=target,
        before=before,
        after=after,
        outcome=outcome,
        error=error,
        duration_ms=duration_ms,
    )
