"""Switch slots to new versions, all or nothing; roll a slot back. One path for every caller
(API, settings page, admin actions, commands)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import DatabaseError, transaction

from modelmgr.audit import actor_label_for, audit_record
from modelmgr.deploy.client import WorkerRefused, worker_client
from modelmgr.deploy.conflicts import check_expected, clean_expected
from modelmgr.deploy.errors import SlotErrors, SwitchWorkerUnavailable
from modelmgr.deploy.events import switch_progress_publish
from modelmgr.deploy.fanout import fleet_switch_stream
from modelmgr.deploy.fleet import fleet_up
from modelmgr.deploy.lock import switch_lock
from modelmgr.deploy.plan import Step, Target, plan_build
from modelmgr.deploy.refusals import refusals_audited
from modelmgr.events import events_publish
from modelmgr.exceptions import ModelmgrError, NotFound, WorkerUnavailable
from modelmgr.metrics import SWITCHES, counted
from modelmgr.models import AuditEvent, ModelVersion, Slot

log = logging.getLogger(__name__)

# Called with every progress event of one switch, as the ``events`` group gets it (less
# the Channels ``type``), from the thread running the switch (modelmgr.api.switch streams).
SwitchListener = Callable[[dict[str, Any]], None]


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


@dataclass
class _Run:
    """One switch in progress: what its failure paths record and publish."""

    switch_id: str
    steps: list[Step]  # the slots that change
    actor: Any
    actor_label: str | None
    action: str
    started: float
    listener: SwitchListener | None = None
    # Extra facts for the audit row's ``after`` (an automatic rollback's reason).
    note: dict[str, Any] | None = None

    @property
    def names(self) -> list[str]:
        return [step.slot.name for step in self.steps]

    def audit(self, *, error: str = "") -> float:
        """The audit row (ok, or the error); the caller's transaction holds a success."""
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        after: dict[str, Any] = {step.slot.name: _ref(step.target) for step in self.steps}
        overridden = {step.slot.name: step.overridden for step in self.steps if step.overridden}
        action = self.action
        if overridden:
            # A forced switch past a quality gate is audited as such, with what it overrode.
            action = f"{self.action}.forced"
            after["overridden"] = overridden
        if self.note:
            after.update(self.note)
        audit_record(
            actor=self.actor,
            actor_label=self.actor_label,
            action=action,
            target_type="slot",
            target=",".join(self.names),
            before={step.slot.name: _ref(step.current) for step in self.steps},
            after=after,
            outcome=AuditEvent.Outcome.ERROR if error else AuditEvent.Outcome.OK,
            error=error,
            duration_ms=duration_ms,
        )
        return duration_ms

    def failed(self, *, detail: str, errors: dict[str, str], event: dict | None = None) -> None:
        """An error audit row in its own transaction (a database that refuses it too does
        not hide the cause), then the failed result event for the browsers."""
        try:
            with transaction.atomic():
                self.audit(error=detail)
        except DatabaseError as exc:
            log.warning("switch %s: could not audit its failure: %s", self.switch_id, exc)
        event = event or {"event": "result", "ok": False}
        self.publish({**event, "errors": errors})

    def publish(self, event: dict[str, Any]) -> None:
        """The one place a switch emits progress: to the browsers, and to this call's
        listener; neither can fail the switch."""
        switch_progress_publish(switch_id=self.switch_id, event=event)
        if self.listener is None:
            return
        try:
            self.listener(
                {**{k: v for k, v in event.items() if k != "type"}, "switch_id": self.switch_id}
            )
        except Exception:  # noqa: BLE001 - a watcher must never break the switch
            log.warning("switch %s: its listener failed", self.switch_id, exc_info=True)


def _announce(run: _Run) -> None:
    """``switch.started``: pages open a box of its own for this switch before its first
    progress event, so the phases of two switches never mix (modelmgr.views.live)."""
    events_publish(
        "switch.started",
        {
            "switch_id": run.switch_id,
            "kind": "rollback" if run.action.startswith("slot.rollback") else "switch",
            "assignments": {step.slot.name: _ref(step.target) for step in run.steps},
            "actor": run.actor_label or actor_label_for(run.actor),
        },
    )


def _run_worker(run: _Run) -> dict[str, Any]:
    """Stream the switch over its workers (modelmgr.deploy.fanout: one worker's /switch,
    or every worker's /prepare then /commit); relay every event but the result, which
    is returned, with the workers it went to in the audit note.

    The result event is published by the caller after the commit, so a browser that
    re-reads the slots when it sees it finds the new state.
    """
    result: dict[str, Any] | None = None
    slots = {step.slot.name: (step.target.pk if step.target else None) for step in run.steps}
    for event in fleet_switch_stream(switch_id=run.switch_id, slots=slots):
        if event.get("event") == "result":
            result = event
            continue
        run.publish(event)
    if result is None:
        raise WorkerUnavailable(
            f"the inference worker at {worker_client().label} stopped answering mid-switch "
            "(its progress stream ended without a result)"
        )
    if result.get("workers"):
        run.note = {**(run.note or {}), "workers": result["workers"]}
    return result


def _commit(run: _Run) -> float:
    """Step 4: the desired state and its audit row, in one short transaction."""
    with transaction.atomic():
        locked = {
            slot.name: slot for slot in Slot.objects.select_for_update().filter(name__in=run.names)
        }
        for step in run.steps:
            slot = locked.get(step.slot.name)
            if slot is None:
                raise NotFound(f"slot {step.slot.name} was deleted during the switch")
            slot.previous_version = step.current
            slot.active_version = step.target
            slot.save(update_fields=["previous_version", "active_version", "updated_at"])
        return run.audit()


def _nudge_back(switch_id: str) -> str:
    """Step 5: the workers may serve versions the database does not name: they swapped,
    or may still swap, but the commit failed or the progress stream broke.

    POST /reconcile restores the database's desired state at once, overruling the grace
    that protects a switch whose commit is in flight (inference.reconcile): sound here,
    under the switch lock, where no switch that reached a worker before this call has
    a commit pending. It answers once the worker is done (after a switch still running
    there), so the caller hears of the failure after the old versions serve again.
    Every up worker is asked (modelmgr.deploy.fleet). Returns what to add to the
    caller's error ("" when no worker answered).
    """
    heard = 0
    for member in fleet_up():
        try:
            member.client.reconcile()
            heard += 1
        except ModelmgrError as exc:
            log.warning(
                "switch %s: could not send the worker %s back to the desired state (its "
                "periodic reconcile will, after MODELMGR_SWITCH_GRACE_S): %s",
                switch_id,
                member.name,
                exc.detail,
            )
    if not heard:
        return ""
    return "; the worker is back on the desired state in the database"


@counted(SWITCHES)
def switch_targets(
    *,
    targets: dict[str, Target],
    actor,
    actor_label: str | None,
    action: str,
    expected: dict[str, str | None] | None = None,
    listener: SwitchListener | None = None,
    switch_id: str | None = None,
    force: bool = False,
    note: dict[str, Any] | None = None,
) -> SwitchResult:
    started = time.perf_counter()
    # A rollback goes back to what served before: the quality gate does not hold it up.
    force = force or action != "slot.switch"
    switch_id = switch_id or uuid.uuid4().hex[:12]
    refusals = {"actor": actor, "actor_label": actor_label, "action": action, "targets": targets}
    with ExitStack() as held:
        with refusals_audited(**refusals):
            plan_build(targets=targets, actor=actor, force=force)  # fail fast, before the lock
            expected = clean_expected(expected, targets=targets)
            check_expected(expected)
            held.enter_context(switch_lock(switch_id=switch_id, slots=list(targets)))
            # The state may have moved while this switch waited for the lock.
            steps = plan_build(targets=targets, actor=actor, force=force)
            check_expected(expected)
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
        run = _Run(switch_id, changing, actor, actor_label, action, started, listener, note)
        _announce(run)
        try:
            outcome = _run_worker(run)
        except WorkerRefused as exc:
            outcome = {"ok": False, "errors": dict.fromkeys(run.names, exc.detail)}
            outcome["status"] = exc.status
        except WorkerUnavailable as exc:
            # The worker may have swapped before the stream broke, or may swap still.
            detail = f"switch failed, nothing changed: {exc.detail}{_nudge_back(switch_id)}"
            run.failed(detail=detail, errors=dict.fromkeys(run.names, exc.detail))
            raise SwitchWorkerUnavailable(
                detail, slots=dict.fromkeys(run.names, exc.detail)
            ) from exc
        if not outcome.get("ok"):
            errors = {str(k): str(v) for k, v in (outcome.get("errors") or {}).items()}
            errors = errors or dict.fromkeys(run.names, "the worker refused the switch")
            detail = "switch failed, nothing changed: " + "; ".join(
                f"{slot}: {cause}" for slot, cause in errors.items()
            )
            run.failed(detail=detail, errors=errors, event=outcome)
            if outcome.get("status") == 503:
                raise SwitchWorkerUnavailable(detail, slots=errors)
            raise SlotErrors(detail, slots=errors, status=409)
        try:
            result.total_ms = _commit(run)
        except (ModelmgrError, DatabaseError) as exc:
            if isinstance(exc, ModelmgrError):
                cause, status = exc.detail, exc.status
            else:
                cause, status = f"the database refused the commit ({exc})", 503
            detail = f"switch failed, nothing changed: {cause}{_nudge_back(switch_id)}"
            run.failed(detail=detail, errors=dict.fromkeys(run.names, cause))
            raise SlotErrors(detail, slots=dict.fromkeys(run.names, cause), status=status) from exc
        except BaseException:
            _nudge_back(switch_id)
            raise
        result.swap_ms = float(outcome.get("swap_ms") or 0.0)
        for name, done in (outcome.get("slots") or {}).items():
            report = result.slots.get(name)
            if report is not None and isinstance(done, dict):
                report.load_ms = float(done.get("load_ms") or 0.0)
                report.warmup_ms = float(done.get("warmup_ms") or 0.0)
        run.publish(outcome)
        return result


def slots_switch(
    *,
    assignments: dict[str, str | None],
    actor,
    actor_label: str | None = None,
    expected: dict[str, str | None] | None = None,
    listener: SwitchListener | None = None,
    switch_id: str | None = None,
    force: bool = False,
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
       The worker loads and warms the versions, then swaps all slots at once. With
       several workers up, every one serving the slots prepares (loads and warms), and
       only then every one swaps; any failure aborts all (modelmgr.deploy.fanout).
    4. On success: one transaction sets each Slot.active_version (previous_version =
       the old one) and writes the ``slot.switch`` audit row; then the result event is
       published. On failure: an error audit row in its own transaction, and SlotErrors
       (409: a load, memory or contract failure) or SwitchWorkerUnavailable (503: the
       worker is down or died mid-switch) naming the cause per slot; the slots in the
       database are unchanged and the worker keeps serving the old versions.
    5. A failure after the worker may have swapped (the commit fails: a database error,
       503, or the slot deleted meanwhile, 404; or the progress stream broke) sends the
       worker back to the database's desired state before answering (``_nudge_back``),
       so the old versions serve again by the time the caller hears of the failure.

    ``swap_ms`` in the result is the worker's swap step alone (one routing table
    replacement for every slot); load and warm-up are per slot, ``total_ms`` the whole
    request, commit included.

    ``None`` as a ref stops the slot serving anything.

    ``force`` overrides a slot's quality gate (modelmgr.deploy.gate; nothing else): a
    version that fails it is otherwise refused (409) naming the failed thresholds; a
    forced switch that overrode something is audited as ``slot.switch.forced`` with
    ``after["overridden"]`` = {slot: [what failed]}.

    ``expected`` (optional) maps a slot of the switch to the version its caller saw it
    serve (a ref, or None for an empty slot), as an ``If-Match``: checked in steps 1
    and 2, a slot that serves something else now is refused (409) naming who changed it
    and when (modelmgr.deploy.conflicts), so a stale page cannot revert another
    operator's switch. Every refusal in steps 1-2 writes a ``refused`` audit row.

    ``listener``, if given, is called with every event published in steps 3-5, in order,
    from this thread (the API streams them to its caller). Nothing is published before
    the worker is asked, so a refusal in steps 1-2 raises before the first call.
    """
    return switch_targets(
        targets=dict(assignments) if isinstance(assignments, dict) else assignments,
        actor=actor,
        actor_label=actor_label,
        action="slot.switch",
        expected=expected,
        listener=listener,
        switch_id=switch_id,
        force=force,
    )
