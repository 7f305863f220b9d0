"""Converge the routing table to the database's desired state (Slot.active_version),
then the pool's pins to ModelVersion.pinned (inference.pins).

Runs on start (restore after a restart or crash), after a nudge, on request and
periodically. The web process commits a switch only after the worker swapped, so between
the swap and the commit the database still names the old version: a reconcile then would
undo a switch about to succeed. So a slot that a /switch changed within
MODELMGR_SWITCH_GRACE_S is left alone; after that the database wins (a web process that
crashed before committing gets its slot put back).

A requested reconcile (POST /reconcile) overrules that grace for every switch that had
reached the worker before it was asked. The web asks for one when a switch failed after
the worker may have swapped (its commit failed, or the progress stream broke): it asks
while it still holds the switch lock (modelmgr.deploy.lock), so no commit of those
earlier switches can be pending, and the database's desired state is restored at once
instead of after the grace. A switch that arrives after the request keeps its grace.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from django.conf import settings

from inference.batching import BatchConfig
from inference.pins import pins_run
from inference.router import CANARY, arm_key
from inference.switch import switch_apply
from inference.versions import (
    desired_batching,
    desired_llm_limits,
    desired_shares,
    desired_state,
)

if TYPE_CHECKING:
    from inference.worker import Worker

log = logging.getLogger("inference")


def reconcile_plan(
    *,
    desired: dict[str, int | None],
    actual: dict[str, int],
    switched_at: dict[str, float],
    failures: dict[str, tuple[int | None, float]],
    now: float,
    grace: float,
    retry_after: float,
    force: bool,
    overrule: frozenset[str] | set[str] = frozenset(),
) -> tuple[dict[str, int | None], list[str]]:
    """Return (changes, settled): the slots to bring to their desired version, and the
    slots already where the database wants them.

    1. A slot whose served version equals the desired one is settled.
    2. A slot a /switch changed less than ``grace`` seconds ago is left alone, unless it
       is in ``overrule`` (a switch nobody will commit: see the module docstring).
    3. Unless forced, a slot whose same desired version failed less than
       ``retry_after`` seconds ago is not retried yet.
    4. Everything else changes: to the desired version, or unserved when the slot is
       gone from the database or has no active version.
    """
    changes: dict[str, int | None] = {}
    settled: list[str] = []
    for slot in sorted(set(desired) | set(actual)):
        want, have = desired.get(slot), actual.get(slot)
        if want == have:
            settled.append(slot)
            continue
        if slot not in overrule and now - switched_at.get(slot, float("-inf")) < grace:
            continue
        failed = failures.get(slot)
        if not force and failed and failed[0] == want and now - failed[1] < retry_after:
            continue
        changes[slot] = want
    return changes, settled


def reconcile_run(
    worker: Worker,
    *,
    force: bool = False,
    restoring: bool = False,
    overrule_grace: bool = False,
    pins: bool = True,
) -> dict:
    """One reconcile pass under the worker's control lock: the slots, then (``pins``) the
    pins. Returns what changed, the slots in error and the pins' outcome (``pins``:
    pinned, unpinned, errors). Load errors of one slot or pin do not stop the others.

    ``overrule_grace`` (a requested reconcile): slots changed by a switch that arrived
    before this call are brought back to the database at once, grace or not.
    """
    requested = time.monotonic()  # before waiting for the lock: switches queued ahead count
    with worker.control_lock:
        desired = desired_state(worker.group)
        # Batching settings are desired state too; the mapping is replaced whole, which
        # the event loop reads without a lock (inference.batching).
        worker.batching = {
            slot: BatchConfig(*config) for slot, config in desired_batching().items()
        }
        worker.llm_limits = desired_llm_limits()  # likewise (inference.serving.generation)
        now = time.monotonic()
        overrule = (
            {slot for slot, at in worker.switch_arrived.items() if at < requested}
            if overrule_grace
            else set()
        )
        changes, settled = reconcile_plan(
            desired=desired,
            actual=worker.router.actual_state(),
            switched_at=worker.switched_at,
            failures=worker.failures,
            now=now,
            grace=settings.MODELMGR_SWITCH_GRACE_S,
            retry_after=settings.MODELMGR_RECONCILE_RETRY_S,
            force=force,
            overrule=overrule,
        )
        shares = _share_drift(worker, changes, now=now, overrule=overrule)
        for slot in settled:
            worker.switched_at.pop(slot, None)
            worker.switch_arrived.pop(slot, None)
            worker.failures.pop(slot, None)
            worker.errors.pop(slot, None)
        if changes:
            changed = _slots_apply(worker, changes, shares, now=now, restoring=restoring)
        else:
            changed = {}
            if shares:
                worker.router.swap({}, shares)
        result = {"changed": changed, "errors": dict(worker.errors)}
        if pins:
            result["pins"] = pins_run(worker, force=force)
        return result


def _share_drift(
    worker: Worker, changes: dict[str, int | None], *, now: float, overrule: set[str]
) -> dict[str, float]:
    """The canary shares to set: every changing canary's, and those of canaries whose
    share alone differs from the database (unless a /switch set it within the grace)."""
    actual = worker.router.actual_shares()
    grace = settings.MODELMGR_SWITCH_GRACE_S
    shares = {}
    for slot, share in desired_shares().items():
        key = arm_key(slot, CANARY)
        if key in changes:
            shares[slot] = share
        elif slot in actual and actual[slot] != share:
            if key in overrule or now - worker.switched_at.get(key, float("-inf")) >= grace:
                shares[slot] = share
    return shares


def _slots_apply(
    worker: Worker,
    changes: dict[str, int | None],
    shares: dict[str, float],
    *,
    now: float,
    restoring: bool,
) -> dict[str, str | None]:
    """Bring the changed slots to their desired versions (not all-or-nothing); record
    each slot's failure for the retry; return slot -> the ref it serves now."""

    def emit(event: dict) -> None:
        if restoring and event.get("event") == "phase":
            worker.not_ready_detail = (
                f"restoring slots: {event['phase']} {event['slot']} ({event['ref']})"
            )

    result = switch_apply(
        worker, slots=changes, emit=emit, atomic=False, source="reconcile", shares=shares
    )
    failed = result.get("errors", {})
    for slot, version_id in changes.items():
        if slot in failed:
            worker.errors[slot] = failed[slot]
            worker.failures[slot] = (version_id, now)
        else:
            worker.errors.pop(slot, None)
            worker.failures.pop(slot, None)
    return {slot: done["ref"] for slot, done in result.get("slots", {}).items()}
