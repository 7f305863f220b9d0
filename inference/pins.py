"""Converge the pool's pins to the database's desired state (ModelVersion.pinned).

A pinned version stays loaded even when no slot serves it, and LRU eviction never takes
it. The database is the truth: each reconcile pass (on start, after a nudge, on request
and periodically) loads and pins every version the database pins (that may be loaded),
and unpins every loaded version it does not, including one pinned by the worker's own
``POST /load {"pin": true}``. An unpinned model is not unloaded at once: it stays as an
ordinary cached model, which eviction takes when memory is needed.

Pins come after slots: a pin never takes memory a slot's version needed, and the worker
is ready once its slots are restored (inference.worker.Worker.restore loads the pins
right after). A pin that fails to load (it does not fit the memory budget, its files
are corrupt, its runtime fails) is reported in the worker's status (``pin_errors``) and
retried like a slot's failure: after MODELMGR_RECONCILE_RETRY_S, or at once when forced.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from inference.entry import READY, short_error
from inference.versions import desired_pins
from modelmgr.exceptions import ModelmgrError, NotFound

if TYPE_CHECKING:
    from inference.worker import Worker

log = logging.getLogger("inference")


@dataclass
class PinPlan:
    pin: list[int] = field(default_factory=list)  # loaded and ready: mark pinned
    load: list[int] = field(default_factory=list)  # not loaded: load, then pin
    unpin: list[int] = field(default_factory=list)  # pinned here, not in the database


def pins_plan(
    *,
    desired: set[int],
    ready: set[int],
    pinned: set[int],
    failures: dict[int, float],
    now: float,
    retry_after: float,
    force: bool,
) -> PinPlan:
    """What to do so that ``pinned`` (the pool's pinned ids) becomes ``desired``.

    1. A desired version already ready and pinned is settled.
    2. A desired version ready but not pinned is pinned in place.
    3. A desired version not ready is loaded, unless (not forced) its load failed less
       than ``retry_after`` seconds ago.
    4. A pinned version no longer desired is unpinned (and stays loaded, evictable).
    """
    plan = PinPlan()
    for version_id in sorted(desired):
        if version_id in ready:
            if version_id not in pinned:
                plan.pin.append(version_id)
            continue
        failed_at = failures.get(version_id)
        if not force and failed_at is not None and now - failed_at < retry_after:
            continue
        plan.load.append(version_id)
    plan.unpin = sorted(pinned - desired)
    return plan


def _load_pinned(worker: Worker, version_id: int) -> str:
    """Load (or revive) ``version_id`` and pin it; returns its ref."""
    return worker.load_entry(version_id=version_id, pin=True).ref


def pins_run(worker: Worker, *, force: bool = False) -> dict:
    """One pass; the caller holds the worker's control lock. Returns the refs pinned and
    unpinned, and the pins in error (version id -> why). One failing pin does not stop
    the others."""
    desired = desired_pins()
    now = time.monotonic()
    entries = worker.pool.entries()
    plan = pins_plan(
        desired=set(desired),
        ready={e.version_id for e in entries if e.state == READY},
        pinned={e.version_id for e in entries if e.pinned},
        failures=worker.pin_failures,
        now=now,
        retry_after=settings.MODELMGR_RECONCILE_RETRY_S,
        force=force,
    )
    for gone in set(worker.pin_errors) | set(worker.pin_failures):
        if gone not in desired:
            worker.pin_errors.pop(gone, None)
            worker.pin_failures.pop(gone, None)
    pinned: list[str] = []
    unpinned: list[str] = []
    for version_id in plan.unpin:
        try:
            entry = worker.pool.set_pinned(version_id, False)
        except NotFound:
            continue  # unloaded meanwhile
        unpinned.append(entry.ref)
        log.info("unpinned %s (no longer pinned in the database); it may be evicted", entry.ref)
    for version_id in plan.pin:
        try:
            entry = worker.pool.set_pinned(version_id, True)
        except NotFound:
            plan.load.append(version_id)  # evicted between the read and now
            continue
        pinned.append(entry.ref)
        log.info("pinned %s (already loaded)", entry.ref)
    for version_id in plan.load:
        try:
            pinned.append(_load_pinned(worker, version_id))
        except Exception as exc:  # one pin's failure must not stop the others
            detail = exc.detail if isinstance(exc, ModelmgrError) else short_error(exc)
            ref = desired[version_id]
            why = detail if ref in detail else f"{ref}: {detail}"
            worker.pin_errors[version_id] = why
            worker.pin_failures[version_id] = now
            log.warning("could not load pinned %s (retried later): %s", ref, why)
        else:
            worker.pin_errors.pop(version_id, None)
            worker.pin_failures.pop(version_id, None)
    return {"pinned": pinned, "unpinned": unpinned, "errors": dict(worker.pin_errors)}
