"""Canary and shadow versions of a slot: set, promote, abort. One path for every caller
(API, settings page, admin actions).

A canary answers ``canary_share`` of a slot's requests (sticky per ``X-Client-Key``); a
shadow gets a copy of every request and its answers are only compared, never returned.
Each change is a switch like any other (modelmgr.deploy.switch): validated, the versions
loaded and warmed beside the serving ones, the worker's routing table swapped once, then
the desired state and one audit row committed together; any failure changes nothing.
The worker names the arms ``slot#canary`` / ``slot#shadow`` (inference.router).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction

from modelmgr.audit import actor_label_for, audit_record
from modelmgr.deploy.client import WorkerRefused, worker_client
from modelmgr.deploy.errors import SlotErrors, SwitchWorkerUnavailable
from modelmgr.deploy.events import switch_progress_publish
from modelmgr.deploy.fanout import fleet_switch_stream
from modelmgr.deploy.lock import switch_lock
from modelmgr.deploy.plan import plan_build
from modelmgr.deploy.switch import _nudge_back
from modelmgr.events import events_publish
from modelmgr.exceptions import ModelmgrError, NotFound, WorkerUnavailable
from modelmgr.models import AuditEvent, ModelVersion, Slot, Task

log = logging.getLogger(__name__)
CANARY, SHADOW = "canary", "shadow"


@dataclass(frozen=True)
class Arms:
    """A slot's serving state: what the database holds, or what a change asks for."""

    active: ModelVersion | None
    previous: ModelVersion | None
    canary: ModelVersion | None
    share: float
    shadow: ModelVersion | None

    @classmethod
    def of(cls, slot: Slot) -> Arms:
        return cls(
            slot.active_version,
            slot.previous_version,
            slot.canary_version,
            slot.canary_share,
            slot.shadow_version,
        )

    def refs(self) -> dict[str, Any]:
        def ref(v):
            return v.ref if v is not None else None

        return {
            "active": ref(self.active),
            "canary": ref(self.canary),
            "canary_share": self.share if self.canary is not None else 0.0,
            "shadow": ref(self.shadow),
        }


def _slot(name: str) -> Slot:
    slot = (
        Slot.objects.select_related(
            "active_version__model", "canary_version__model", "shadow_version__model"
        )
        .filter(name=name)
        .first()
    )
    if slot is None:
        raise SlotErrors(
            f"there is no slot named {name!r}", slots={name: "no such slot"}, status=404
        )
    return slot


def _refuse(slot: str, cause: str, status: int = 409) -> SlotErrors:
    return SlotErrors(f"{slot}: {cause}; nothing changed", slots={slot: cause}, status=status)


def _version_for(slot: Slot, ref: Any, *, actor, force: bool) -> ModelVersion:
    """The version ``ref`` names, checked as a switch of the slot would check it."""
    if not isinstance(ref, str) or not ref:
        raise _refuse(slot.name, f"expected a 'name@version' string, got {ref!r}", 422)
    if slot.active_version is None:
        raise _refuse(slot.name, "the slot serves nothing; switch it to a version first")
    step = plan_build(targets={slot.name: ref}, actor=actor, force=force)[0]
    if step.unchanged:
        raise _refuse(slot.name, f"{step.target.ref} is already the slot's active version")
    return step.target


def _clean_share(slot: str, share: Any) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
        raise _refuse(slot, f"share must be a number from 0 to 1, got {share!r}", 422)
    if not 0 <= share <= 1:
        raise _refuse(slot, f"share must be from 0 to 1, got {share!r}", 422)
    return float(share)


def _want(slot: Slot, action: str, *, ref: Any, share: Any, actor, force: bool) -> Arms:
    """Step 1: the arms the slot should have after ``action``; refuses a bad request."""
    now = Arms.of(slot)
    if action in ("slot.canary", "slot.shadow") and slot.task == Task.LLM:
        raise _refuse(
            slot.name,
            "canary and shadow serve tensor models only: a language model slot's routes "
            "(OpenAI, Ollama) stay on its active version",
        )
    if action == "slot.canary":
        share = _clean_share(slot.name, share)
        version = _version_for(slot, ref, actor=actor, force=force)
        return Arms(now.active, now.previous, version, share, now.shadow)
    if action == "slot.shadow":
        version = _version_for(slot, ref, actor=actor, force=True)  # it answers nobody
        return Arms(now.active, now.previous, now.canary, now.share, version)
    if action == "slot.promote":
        if now.canary is None:
            raise _refuse(slot.name, "the slot has no canary to promote")
        plan_build(targets={slot.name: now.canary}, actor=actor, force=force)
        shadow = None if now.shadow == now.canary else now.shadow
        return Arms(now.canary, now.active, None, 0.0, shadow)
    if action == "slot.abort":
        if now.canary is None and now.shadow is None:
            raise _refuse(slot.name, "the slot has no canary or shadow to abort")
        plan_build(targets={slot.name: now.active}, actor=actor, force=True)  # may switch it
        return Arms(now.active, now.previous, None, 0.0, None)
    raise ValueError(action)


def _worker_change(name: str, now: Arms, want: Arms) -> tuple[dict, dict]:
    """The worker's /switch body: the keys that change, and the canary's share."""
    slots: dict[str, int | None] = {}
    for key, before, after in (
        (name, now.active, want.active),
        (f"{name}#{CANARY}", now.canary, want.canary),
        (f"{name}#{SHADOW}", now.shadow, want.shadow),
    ):
        if before != after or (key.endswith(CANARY) and after is not None):
            slots[key] = after.pk if after is not None else None
    shares = {name: want.share} if want.canary is not None else {}
    return slots, shares


def arms_change(
    *,
    slot: str,
    action: str,
    actor,
    actor_label: str | None = None,
    ref: Any = None,
    share: Any = None,
    force: bool = False,
) -> dict[str, Any]:
    """Change a slot's canary or shadow, all or nothing; returns {"slot", "before",
    "after", "switch_id", "total_ms"}.

    ``action``: ``slot.canary`` (``ref`` at ``share``: a new canary, or a new share for
    the same one), ``slot.shadow`` (``ref``), ``slot.promote`` (the canary becomes the
    active version, the active one the previous; the canary is gone), ``slot.abort``
    (canary and shadow removed; the active version serves everything).

    1. Validate (slot exists 404; share 0..1 and ref a string 422; the version visible
       404, deployable and fitting the slot's contract and quality gate 409 unless
       ``force`` (a shadow needs no gate: it answers nobody); the actor may switch it
       403); then again under the switch lock.
    2. The worker loads and warms what is new and swaps the slot's route in one step.
    3. One transaction: the slot's fields and the audit row (``action``). A failure
       writes an error audit row instead and raises; the worker is sent back to the
       database's state when it may have swapped already.
    """
    started = time.perf_counter()
    switch_id = uuid.uuid4().hex[:12]
    _want(_slot(slot), action, ref=ref, share=share, actor=actor, force=force)
    with switch_lock(switch_id=switch_id, slots=[slot]):
        row = _slot(slot)
        now = Arms.of(row)
        want = _want(row, action, ref=ref, share=share, actor=actor, force=force)
        slots, shares = _worker_change(slot, now, want)
        label = actor_label or actor_label_for(actor)
        events_publish(
            "switch.started",
            {
                "switch_id": switch_id,
                "kind": action.removeprefix("slot."),
                "assignments": {k: v for k, v in want.refs().items() if k != "canary_share"},
                "actor": label,
            },
        )

        def audit(error: str = "") -> None:
            audit_record(
                actor=actor,
                actor_label=label,
                action=action,
                target_type="slot",
                target=slot,
                before=now.refs(),
                after=want.refs(),
                outcome=AuditEvent.Outcome.ERROR if error else AuditEvent.Outcome.OK,
                error=error,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )

        try:
            outcome = _run_worker(switch_id, slots, shares)
            if not outcome.get("ok"):
                errors = outcome.get("errors") or {}
                cause = "; ".join(f"{k}: {v}" for k, v in errors.items()) or "refused"
                raise SlotErrors(f"{action} failed, nothing changed: {cause}", slots={slot: cause})
            with transaction.atomic():
                locked = Slot.objects.select_for_update().filter(name=slot).first()
                if locked is None:
                    raise NotFound(f"slot {slot} was deleted during the change")
                locked.active_version, locked.previous_version = want.active, want.previous
                locked.canary_version, locked.canary_share = want.canary, want.share
                locked.shadow_version = want.shadow
                locked.save()
                audit()
        except (ModelmgrError, DatabaseError) as exc:
            cause = exc.detail if isinstance(exc, ModelmgrError) else f"database error ({exc})"
            if not isinstance(exc, SlotErrors) or isinstance(exc, SwitchWorkerUnavailable):
                cause += _nudge_back(switch_id)
            try:
                with transaction.atomic():
                    audit(error=cause)
            except DatabaseError as audit_exc:  # a refused audit must not hide the cause
                log.warning("%s on %s: could not audit its failure: %s", action, slot, audit_exc)
            switch_progress_publish(
                switch_id=switch_id, event={"event": "result", "ok": False, "errors": {slot: cause}}
            )
            if isinstance(exc, SlotErrors):
                raise
            if isinstance(exc, WorkerUnavailable | DatabaseError):
                raise SwitchWorkerUnavailable(cause, slots={slot: cause}) from exc
            raise SlotErrors(cause, slots={slot: cause}, status=exc.status) from exc
        switch_progress_publish(switch_id=switch_id, event=outcome)
    return {
        "slot": slot,
        "switch_id": switch_id,
        "before": now.refs(),
        "after": want.refs(),
        "total_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def _run_worker(switch_id: str, slots: dict, shares: dict) -> dict[str, Any]:
    result: dict[str, Any] | None = None
    try:
        for event in fleet_switch_stream(switch_id=switch_id, slots=slots, shares=shares):
            if event.get("event") == "result":
                result = {k: v for k, v in event.items() if k != "workers"}
            else:
                switch_progress_publish(switch_id=switch_id, event=event)
    except WorkerRefused as exc:
        if exc.status >= 500:
            raise WorkerUnavailable(exc.detail) from exc
        raise SlotErrors(exc.detail, slots=dict.fromkeys(slots, exc.detail)) from exc
    if result is None:
        raise WorkerUnavailable(
            f"the inference worker at {worker_client().label} stopped answering mid-switch"
        )
    return result


def canary_set(*, slot: str, ref: Any, share: Any, actor, force: bool = False, **kw) -> dict:
    return arms_change(
        slot=slot, action="slot.canary", ref=ref, share=share, actor=actor, force=force, **kw
    )


def shadow_set(*, slot: str, ref: Any, actor, **kw) -> dict:
    return arms_change(slot=slot, action="slot.shadow", ref=ref, actor=actor, **kw)


def canary_promote(*, slot: str, actor, force: bool = False, **kw) -> dict:
    return arms_change(slot=slot, action="slot.promote", actor=actor, force=force, **kw)


def arms_abort(*, slot: str, actor, **kw) -> dict:
    return arms_change(slot=slot, action="slot.abort", actor=actor, **kw)
