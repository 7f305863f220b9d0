"""Audit rows for refused switches and rollbacks: the audit promises every change and
every refused change, so a 404/403/409/422 leaves a row (outcome ``refused``) too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, transaction

from modelmgr.audit import audit_record
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import AuditEvent, ModelVersion, Slot

log = logging.getLogger(__name__)


def _asked(target: Any) -> str | None:
    if isinstance(target, ModelVersion):
        return target.ref
    return target if target is None or isinstance(target, str) else repr(target)


def refusal_record(
    *, actor, actor_label: str | None, action: str, targets: dict[str, Any], error: str
) -> None:
    """One ``refused`` row: what each slot served, what was asked, and why not.

    In its own transaction: nothing else is written for a refusal, and a database that
    refuses the row too must not hide the refusal's cause from the caller.
    """
    names = [str(name) for name in targets][:50]
    served = {
        slot.name: (slot.active_version.ref if slot.active_version else None)
        for slot in Slot.objects.select_related("active_version__model").filter(name__in=names)
    }
    try:
        with transaction.atomic():
            audit_record(
                actor=actor,
                actor_label=actor_label,
                action=action,
                target_type="slot",
                target=",".join(names)[:300],
                before={name: served.get(name) for name in names},
                after={str(name): _asked(target) for name, target in targets.items()},
                outcome=AuditEvent.Outcome.REFUSED,
                error=error,
            )
    except DatabaseError as exc:
        log.warning("%s refused (%s); could not audit the refusal: %s", action, error, exc)


@contextmanager
def refusals_audited(
    *, actor, actor_label: str | None, action: str, targets: Any
) -> Iterator[None]:
    """Audit a refusal (any domain error) raised inside the block, then let it go on."""
    try:
        yield
    except ModelmgrError as exc:
        refusal_record(
            actor=actor,
            actor_label=actor_label,
            action=action,
            targets=targets if isinstance(targets, dict) else {},
            error=exc.detail,
        )
        raise
