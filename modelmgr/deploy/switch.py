"""Switch slots to new versions, all or nothing; roll a slot back. One path for every caller
(API, settings page, admin actions, commands)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.deploy.client import WorkerRefused, worker_client
from modelmgr.deploy.errors import SlotErrors, SwitchWorkerUnavailable
from modelmgr.deploy.events import switch_progress_publish
from modelmgr.deploy.lock import switch_lock
from modelmgr.deploy.plan import Step, Target, plan_build
from modelmgr.exceptions import ModelmgrError, NotFound, WorkerUnavailable
from modelmgr.models import AuditEvent, ModelVersion, Slot

log = logging.getLogger(__name__)


@dataclass
class SlotReport:
    ref: str | None
    previous: str | None
    version_id: int | None
    load_ms: float = 0.0
    warmup_ms: float = 0.0
    unchanged: bool = False


@dataclass
class SwitchResult:
    switch_id: str
    slots: dict[str, SlotReport] = field(default_factory=dict)
    swap_ms: float = 0.0
    total_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "switch_id": self.switch_id,
            "ok": True,
            "slots": {name: asdict(report) for name, report in self.slots.items()},
            "swap_ms": self.swap_ms,
            "total_ms": self.total_ms,
        }


def _ref(version: ModelVersion | None) -> str | None:
    return version.ref if version is not None else None


def _audit_failure(
    *, steps: list[Step], actor, actor_label, action: str, error: str, started: float
) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action=action,
            target_type="slot",
            target=",".join(step.slot.name for step in steps),
            before={step.slot.name: _ref(step.current) for step in steps},
            after={step.slot.name: _ref(step.target) for step in steps},
            outcome=AuditEvent.Outcome.ERROR,
            error=error,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )


def _run_worker(*, switch_id: str, steps: list[Step]) -> dict[str, Any]:
    """Stream the worker's /switch; relay every event but the result, which is returned.

    The result event is published by the caller after the commit, so a browser that
    re-reads the slots when it sees it finds the new state.
    """
    result: dict[str, Any] | None = None
    slots = {step.slot.name: (step.target.pk if step.target else None) for step in steps}
    for event in worker_client().switch_stream(switch_id=switch_id, slots=slots):
        if event.get("event") == "result":
            result = event
            continue
        switch_progress_publish(switch_id=switch_id, event=event)
    if result is None:
        raise WorkerUnavailable(
            f"the inference worker at {worker_client().label} stopped answering mid-switch "
            "(its progress stream ended without a result)"
        )
    return result


def _commit(*, steps: list[Step], actor, actor_label, action: str, started: float) -> float:
    """Step 4: the desired state and its audit row, in one short transaction."""
    with transaction.atomic():
        locked = {
            slot.name: slot
            for slot in Slot.objects.select_for_update().filter(
                name__in=[step.slot.name for step in steps]
            )
        }
        for step in steps:
            slot = locked.get(step.slot.name)
            if slot is None:
                raise NotFound(f"slot {step.slot.name} was deleted during the switch")
            slot.previous_version = step.current
            slot.active_version = step.target
            slot.save(update_fields=["previous_version", "active_version", "updated_at"])
        total_ms = round((time.perf_counter() - started) * 1000, 3)
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action=action,
            target_type="slot",
            target=",".join(step.slot.name for step in steps),
            before={step.slot.name: _ref(step.current) for step in steps},
            after={step.slot.name: _ref(step.target) for step in steps},
            duration_ms=total_ms,
        )
    return total_ms


def _nudge_back() -> None:
    """After a failed commit the worker serves what the database does not name: reconcile."""
    try:
        worker_client().reconcile()
    except ModelmgrError:
        log.warning("could not nudge the worker to reconcile after a failed commit", exc_info=True)


def _switch(
    *, targets: dict[str, Target], actor, actor_label: str | None, action: str
) -> SwitchResult:
    started = time.perf_counter()
    switch_id = uuid.uuid4().hex[:12]
    plan_build(targets=targets, actor=actor)  # fail fast, before waiting for the lock
    with switch_lock(switch_id=switch_id, slots=list(targets)):
        steps = plan_build(targets=targets, actor=actor)  # the state may have moved meanwhile
        result = SwitchResult(switch_id=switch_id)
        for step in steps:
            result.slots[step.slot.name] = SlotReport(
                ref=_ref(step.target),
                previous=_ref(step.current),
                version_id=step.target.pk if step.target else None,
                unchanged=step.unchanged,
            )
        changing = [step for step in steps if not step.unchanged]
        if not changing:
            result.total_ms = round((time.perf_counter() - started) * 1000, 3)
            return result
        names = [step.slot.name for step in changing]
        try:
            outcome = _run_worker(switch_id=switch_id, steps=changing)
        except WorkerRefused as exc:
            outcome = {
                "ok": False,
                "errors": dict.fromkeys(names, exc.detail),
                "status": exc.status,
            }
        except WorkerUnavailable as exc:
            _audit_failure(
                steps=changing,
                actor=actor,
                actor_label=actor_label,
                action=action,
                error=exc.detail,
                started=started,
            )
            switch_progress_publish(
                switch_id=switch_id,
                event={"event": "result", "ok": False, "errors": dict.fromkeys(names, exc.detail)},
            )
            raise SwitchWorkerUnavailable(
                f"switch failed, nothing changed: {exc.detail}",
                slots=dict.fromkeys(names, exc.detail),
            ) from exc
        if not outcome.get("ok"):
            errors = {str(k): str(v) for k, v in (outcome.get("errors") or {}).items()}
            errors = errors or dict.fromkeys(names, "the worker refused the switch")
            detail = "switch failed, nothing changed: " + "; ".join(
                f"{slot}: {cause}" for slot, cause in errors.items()
            )
            _audit_failure(
                steps=changing,
                actor=actor,
                actor_label=actor_label,
                action=action,
                error=detail,
                started=started,
            )
            switch_progress_publish(switch_id=switch_id, event={**outcome, "errors": errors})
            if outcome.get("status") == 503:
                raise SwitchWorkerUnavailable(detail, slots=errors)
            raise SlotErrors(detail, slots=errors, status=409)
        try:
            result.total_ms = _commit(
                steps=changing, actor=actor, actor_label=actor_label, action=action, started=started
            )
        except Exception:
            _nudge_back()
            raise
        result.swap_ms = float(outcome.get("swap_ms") or 0.0)
        for name, done in (outcome.get("slots") or {}).items():
            report = result.slots.get(name)
            if report is not None and isinstance(done, dict):
                report.load_ms = float(done.get("load_ms") or 0.0)
                report.warmup_ms = float(done.get("warmup_ms") or 0.0)
        switch_progress_publish(switch_id=switch_id, event=outcome)
        return result


def slots_switch(
    *, assignments: dict[str, str | None], actor, actor_label: str | None = None
) -> SwitchResult:
    """Make each slot serve its assigned version, all or nothing.

    1. Validate every assignment (slot exists; ref resolves to a version the actor can
       see; the version is available, trusted if pickle-based, and fits the slot's task
       and contract; the actor may switch it). Problems raise SlotErrors naming each
       slot's cause (404/403/422/409); nothing changes. Artifact hashes are verified by
       the worker while it materializes the files.
    2. Take the switch lock (modelmgr.deploy.lock: no transaction is held while the
       worker loads) and validate again: the state may have changed while waiting.
       Slots already serving their version are reported ``unchanged`` and skipped.
    3. POST the changing slots to the worker's /switch and relay every NDJSON event to
       the ``events`` group as ``switch.progress`` (a down layer never fails a switch).
       The worker loads and warms the versions, then swaps all slots at once.
    4. On success: one transaction sets each Slot.active_version (previous_version =
       the old one) and writes the ``slot.switch`` audit row; then the result event is
       published. On failure: an error audit row in its own transaction, and SlotErrors
       (409: a load, memory or contract failure) or SwitchWorkerUnavailable (503: the
       worker is down or died mid-switch) naming the cause per slot; the slots in the
       database are unchanged and the worker keeps serving the old versions.

    ``None`` as a ref stops the slot serving anything.
    """
    return _switch(
        targets=dict(assignments) if isinstance(assignments, dict) else assignments,
        actor=actor,
        actor_label=actor_label,
        action="slot.switch",
    )


def slot_rollback(*, slot_name: str, actor, actor_label: str | None = None) -> SwitchResult:
    """Switch ``slot_name`` back to its previous version (409 when it has none).

    Same path as ``slots_switch``; afterwards the version rolled away from becomes the
    previous one, so a second rollback undoes the first.
    """
    slot = Slot.objects.select_related("previous_version__model").filter(name=slot_name).first()
    if slot is None:
        raise NotFound(f"there is no slot named {slot_name!r}")
    if slot.previous_version is None:
        raise SlotErrors(
            f"slot {slot_name} has no previous version to roll back to",
            slots={slot_name: "no previous version"},
            status=409,
        )
    return _switch(
        targets={slot_name: slot.previous_version},
        actor=actor,
        actor_label=actor_label,
        action="slot.rollback",
    )
