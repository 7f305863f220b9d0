"""Health watches: after a switch (or a canary promotion), watch the new version's
requests for a window and roll the slot back automatically when it regresses.

Where it runs, and why. The watch is a database row (SwitchWatch): thresholds, the
previous version's baseline, figures, state and verdict. Its figures come from the
UsageBucket rows every worker flushes (modelmgr.deploy.watch_measure), so they cover
every worker and any web process can read them. The watcher itself is a daemon thread
in the web process that started the watch, one ``watch_step`` per
MODELMGR_WATCH_POLL_S, each step a heartbeat on the row. A web process that dies takes
its watchers with it; their rows stop beating and are marked ``abandoned`` (audited) by
the next process that lists or starts a watch (``watches_sweep``) once the heartbeat is
MODELMGR_WATCH_STALE_S old: a dead watcher never passes a version silently, and never
rolls back a version nobody watched. The version keeps serving; an operator decides.

A rollback is the ordinary one (modelmgr.deploy.switch, all or nothing, no request
dropped), audited as ``slot.rollback.auto`` with the measured figures as its reason and
``expected`` = the watched version, so it never undoes a switch made meanwhile.
Verdicts without a rollback are audited as ``slot.watch.<verdict>`` (healthy,
inconclusive, superseded, abandoned). Every change of a watch is pushed to open pages
as ``watch.update``.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from modelmgr.audit import actor_label_for, audit_record
from modelmgr.deploy.watch_measure import baseline_measure, usage_offset, window_figures
from modelmgr.deploy.watch_rules import Thresholds, judge, thresholds_parse
from modelmgr.deploy.watch_runner import Heartbeat, poll_s, watch_thread_start
from modelmgr.events import _HERE, events_publish
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ModelVersion, Slot, SwitchWatch, WatchState

log = logging.getLogger(__name__)
WATCH_LABEL = "system (health watch)"
# The audit action of each verdict reached without a rollback.
VERDICT_ACTIONS = {
    WatchState.PASSED: "slot.watch.healthy",
    WatchState.INCONCLUSIVE: "slot.watch.inconclusive",
    WatchState.SUPERSEDED: "slot.watch.superseded",
    WatchState.ABANDONED: "slot.watch.abandoned",
    WatchState.ROLLBACK_FAILED: "slot.watch.rollback_failed",
}


def stale_s() -> float:
    return float(getattr(settings, "MODELMGR_WATCH_STALE_S", 30.0))


def _qualified(version: ModelVersion | None) -> str:
    return f"{version.model.owner.get_username()}/{version.ref}" if version else ""


def watch_as_dict(watch: SwitchWatch) -> dict[str, Any]:
    return {
        "id": watch.pk,
        "slot": watch.slot.name,
        "version": watch.version_ref,
        "previous": watch.previous_ref or None,
        "switch_id": watch.switch_id or None,
        "state": watch.state,
        "verdict": watch.verdict,
        "thresholds": watch.thresholds,
        "baseline": watch.baseline,
        "figures": watch.figures,
        "started_at": watch.started_at,
        "deadline_at": watch.deadline_at,
        "finished_at": watch.finished_at,
        "heartbeat_at": watch.heartbeat_at,
        "started_by": watch.actor_label,
    }


def _publish(watch_id: int) -> None:
    """``watch.update`` to every open page once the change is committed."""

    def send() -> None:
        watch = SwitchWatch.objects.select_related("slot").filter(pk=watch_id).first()
        if watch is not None:
            # JSON-safe: the Redis layer cannot carry datetimes.
            payload = json.loads(json.dumps(watch_as_dict(watch), cls=DjangoJSONEncoder))
            events_publish("watch.update", {"watch": payload})

    transaction.on_commit(send, robust=True)


def watch_start(
    *,
    slot: str,
    version: ModelVersion,
    baseline: dict[str, Any],
    thresholds: Thresholds | dict[str, Any],
    previous: ModelVersion | None = None,
    offset: dict[str, Any] | None = None,
    switch_id: str = "",
    actor=None,
    actor_label: str | None = None,
    run: bool = True,
) -> SwitchWatch:
    """Watch ``version``, which ``slot`` serves now, for ``thresholds.window_s``.

    ``baseline`` is the previous version's figures measured before the switch
    (``watch_measure.baseline_measure``); ``offset`` what ``version`` had counted in the
    slot then (``watch_measure.usage_offset``; default: measured now). ``previous`` is
    what a regression rolls back to (default: the slot's previous version). A running
    watch of the slot is superseded. ``run=False`` starts no thread (a caller that steps
    the watch itself). ``thresholds`` may be the caller's dict, checked as the API
    checks it (InvalidInput, 422, naming the field).
    """
    if not isinstance(thresholds, Thresholds):
        thresholds = thresholds_parse(thresholds)
    now = timezone.now()
    watches_sweep(now=now)
    with transaction.atomic():
        row = (
            Slot.objects.select_for_update(of=("self",))
            .select_related("previous_version")
            .get(name=slot)
        )
        if previous is None:
            previous = row.previous_version
        for old in SwitchWatch.objects.filter(slot=row, state=WatchState.RUNNING):
            _finish(old, WatchState.SUPERSEDED, f"a new watch of {version.ref} replaced it", now)
        watch = SwitchWatch.objects.create(
            slot=row,
            version=version,
            previous_version=previous,
            version_ref=_qualified(version),
            previous_ref=_qualified(previous),
            switch_id=switch_id,
            thresholds=thresholds.as_dict(),
            baseline=baseline,
            offset=offset
            if offset is not None
            else usage_offset(slot=slot, version_id=version.pk, at=now),
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            actor_label=actor_label or actor_label_for(actor),
            runner=_HERE,
            started_at=now,
            deadline_at=now + timedelta(seconds=thresholds.window_s),
            heartbeat_at=now,
        )
        audit_record(
            actor=actor,
            actor_label=watch.actor_label,
            action="slot.watch.start",
            target_type="slot",
            target=slot,
            before={"version": watch.previous_ref or None},
            after={"version": watch.version_ref, "watch": watch.pk, **thresholds.as_dict()},
        )
        _publish(watch.pk)
    if run:
        watch_thread_start(watch.pk, step=watch_step)
    return watch


def _finish(watch: SwitchWatch, state: str, verdict: str, now, *, audit: bool = True) -> bool:
    """Move a running watch to ``state`` (in the caller's transaction); False when it was
    no longer running (another process judged it first)."""
    moved = SwitchWatch.objects.filter(pk=watch.pk, state=WatchState.RUNNING).update(
        state=state, verdict=verdict, finished_at=now, heartbeat_at=now, figures=watch.figures
    )
    if not moved:
        return False
    if audit:
        audit_record(
            actor=None,
            actor_label=WATCH_LABEL,
            action=VERDICT_ACTIONS[state],
            target_type="slot",
            target=watch.slot.name,
            before={"version": watch.version_ref},
            after={"verdict": verdict, "watch": watch.pk, "figures": watch.figures},
        )
    _publish(watch.pk)
    return True


def watch_step(watch_id: int, *, now=None) -> bool:
    """One look at a watch; True once it has its verdict.

    1. Heartbeat; a slot that no longer serves the version ends the watch (superseded).
    2. Measure the version's requests since the switch; a regression (modelmgr.deploy.
       watch_rules.judge) rolls the slot back at once.
    3. Past the window plus one stats flush: healthy, or inconclusive below min_requests.
    """
    now = now or timezone.now()
    watch = SwitchWatch.objects.select_related("slot", "previous_version").get(pk=watch_id)
    if watch.state != WatchState.RUNNING:
        return True
    watch.heartbeat_at = now
    slot = watch.slot
    slot.refresh_from_db(fields=["active_version"])
    if watch.version_id is None or slot.active_version_id != watch.version_id:
        with transaction.atomic():
            _finish(watch, WatchState.SUPERSEDED, f"slot {slot.name} was switched meanwhile", now)
        return True
    thresholds = Thresholds(**watch.thresholds)
    watch.figures = window_figures(
        slot=slot.name,
        version_id=watch.version_id,
        started=watch.started_at,
        offset=watch.offset,
        now=now,
    )
    verdict = judge(thresholds, watch.figures, watch.baseline)
    if verdict.regressed:
        _roll_back(watch, verdict.reason, now)
        return True
    grace = timedelta(seconds=float(settings.MODELMGR_STATS_FLUSH_S) + poll_s())
    if now >= watch.deadline_at + grace:
        enough = watch.figures["count"] >= thresholds.min_requests
        state = WatchState.PASSED if enough else WatchState.INCONCLUSIVE
        words = "healthy" if enough else "inconclusive, the version stays"
        with transaction.atomic():
            _finish(watch, state, f"{words}: {verdict.reason}", now)
        return True
    with transaction.atomic():
        changed = SwitchWatch.objects.filter(pk=watch.pk, state=WatchState.RUNNING).update(
            heartbeat_at=now, figures=watch.figures, verdict=verdict.reason
        )
        if changed:
            _publish(watch.pk)
    return not changed


def _roll_back(watch: SwitchWatch, reason: str, now) -> None:
    from modelmgr.deploy.switch import switch_targets

    slot = watch.slot.name
    SwitchWatch.objects.filter(pk=watch.pk).update(
        figures=watch.figures, verdict=reason, heartbeat_at=now
    )
    if watch.previous_version is None:
        with transaction.atomic():
            _finish(watch, WatchState.ROLLBACK_FAILED, f"{reason}; no previous version", now)
        return
    beating = Heartbeat(watch.pk)
    try:
        switch_targets(
            targets={slot: watch.previous_version},
            actor=None,
            actor_label=WATCH_LABEL,
            action="slot.rollback.auto",
            expected={slot: watch.version_ref},
            note={"reason": reason, "watch": watch.pk, "figures": watch.figures},
        )
    except ModelmgrError as exc:
        with transaction.atomic():
            _finish(
                watch,
                WatchState.ROLLBACK_FAILED,
                f"{reason}; the automatic rollback failed: {exc.detail}",
                timezone.now(),
                audit=False,  # the switch service audited the failure with its cause
            )
        return
    finally:
        # Anything else (the database away) is retried at the next step: the expected
        # version keeps a second rollback from undoing anything.
        beating.stop()
    with transaction.atomic():
        # The rollback's own audit row (slot.rollback.auto) carries the reason.
        _finish(watch, WatchState.ROLLED_BACK, reason, timezone.now(), audit=False)


def watches_sweep(*, now=None) -> int:
    """Mark running watches whose watcher stopped beating as abandoned (audited)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stale_s())
    count = 0
    stale = SwitchWatch.objects.select_related("slot").filter(
        state=WatchState.RUNNING, heartbeat_at__lt=cutoff
    )
    for watch in stale:
        verdict = (
            f"abandoned: the process watching it ({watch.runner}) stopped at "
            f"{watch.heartbeat_at:%H:%M:%S} UTC before a verdict; {watch.version_ref} keeps "
            "serving, neither judged healthy nor rolled back"
        )
        with transaction.atomic():
            count += _finish(watch, WatchState.ABANDONED, verdict, now)
    return count


__all__ = ["baseline_measure", "usage_offset", "watch_start", "watch_step", "watches_sweep"]
