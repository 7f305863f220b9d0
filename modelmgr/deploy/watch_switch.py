"""A health-gated switch: the ordinary switch, then a watch of each slot it changed."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from modelmgr.deploy.canary import canary_promote
from modelmgr.deploy.errors import SlotErrors
from modelmgr.deploy.switch import SwitchResult, slots_switch
from modelmgr.deploy.watch import watch_start
from modelmgr.deploy.watch_measure import baseline_measure, usage_offsets
from modelmgr.deploy.watch_rules import Thresholds, thresholds_parse
from modelmgr.models import ModelVersion, Slot
from modelmgr.registry.validation import InvalidInput


def slots_switch_watched(
    *, assignments: dict[str, Any], watch: Thresholds | None, **switch: Any
) -> tuple[SwitchResult, dict[str, int]]:
    """``slots_switch(assignments=..., **switch)``; with ``watch``, each slot the switch
    changed to a version is watched (modelmgr.deploy.watch). Returns the switch's result
    and slot -> watch id.

    1. Before the switch: every slot of a watched switch must serve a version now (what
       a regression rolls back to; 422 otherwise, nothing changes); measure each one's
       baseline (the previous version's p95) and the usage already counted.
    2. The switch, all or nothing, exactly as without a watch.
    3. A watch per changed slot, measured from the moment before the switch, so no
       request to the new version escapes it.
    """
    if watch is None:
        return slots_switch(assignments=assignments, **switch), {}
    if not isinstance(assignments, dict):
        return slots_switch(assignments=assignments, **switch), {}
    before = timezone.now()
    current = {
        slot.name: slot.active_version_id
        for slot in Slot.objects.filter(name__in=list(assignments))
    }
    # A slot that serves nothing has nothing to roll back to (an unknown slot: 404 later).
    empty = sorted(
        name
        for name, ref in assignments.items()
        if ref is not None and name in current and current[name] is None
    )
    if empty:
        causes = {name: "serves nothing now: nothing to roll back to" for name in empty}
        raise SlotErrors(
            "a watched switch needs each slot to serve a version now, to roll back to if the "
            f"new one regresses: {', '.join(empty)} serve(s) nothing",
            slots=causes,
            status=422,
        )
    if all(ref is None for ref in assignments.values()):
        raise SlotErrors(
            "a watch needs a version to watch; this switch stops every slot", status=422
        )
    baselines = {
        name: baseline_measure(slot=name, version_id=version_id)
        for name, version_id in current.items()
    }
    offsets = {name: usage_offsets(slot=name, at=before) for name in current}
    result = slots_switch(assignments=assignments, **switch)
    watches: dict[str, int] = {}
    for name, report in result.slots.items():
        if report.unchanged or report.version_id is None:
            continue
        version = ModelVersion.objects.select_related("model__owner").get(pk=report.version_id)
        started = watch_start(
            slot=name,
            version=version,
            baseline=baselines.get(name) or {},
            thresholds=watch,
            offset=offsets.get(name, {}).get(version.pk) or {"since": before.isoformat()},
            switch_id=result.switch_id,
            actor=switch.get("actor"),
            actor_label=switch.get("actor_label"),
        )
        watches[name] = started.pk
    return result, watches


def canary_promote_watched(
    *, slot: str, watch: Thresholds | dict[str, Any] | None, run: bool = True, **promote: Any
) -> tuple[dict[str, Any], int | None]:
    """``canary_promote(slot=..., **promote)``; with ``watch``, the promoted version is
    watched like a switched one (a regression rolls back to the version it replaced).
    Returns the promotion's answer and the watch id (None without a watch).

    The baseline is the active version's p95 before the promotion and the offset what the
    canary had counted in the slot by then, so only requests after the promotion are
    judged (the canary's own share of traffic before it was promoted is not). ``run=False``:
    no watcher thread; the caller steps the watch (``manage.py slot promote`` in the
    foreground, since a command's threads end with it)."""
    if watch is None:
        return canary_promote(slot=slot, **promote), None
    thresholds = watch if isinstance(watch, Thresholds) else _thresholds(watch)
    before = timezone.now()
    row = Slot.objects.filter(name=slot).first()
    baseline = offset = None
    if row is not None and row.active_version_id is not None:
        baseline = baseline_measure(slot=slot, version_id=row.active_version_id)
        offset = usage_offsets(slot=slot, at=before).get(row.canary_version_id)
    answer = canary_promote(slot=slot, **promote)
    row = Slot.objects.select_related("active_version__model__owner").get(name=slot)
    started = watch_start(
        slot=slot,
        version=row.active_version,
        baseline=baseline or {},
        thresholds=thresholds,
        offset=offset or {"since": before.isoformat()},
        switch_id=answer.get("switch_id", ""),
        actor=promote.get("actor"),
        actor_label=promote.get("actor_label"),
        run=run,
    )
    return answer, started.pk


def _thresholds(watch: dict[str, Any]) -> Thresholds:
    """The caller's watch dict, checked as the switch API checks it (422 naming the field)."""
    try:
        return thresholds_parse(watch)
    except InvalidInput as exc:
        raise SlotErrors(exc.detail, status=422) from None
