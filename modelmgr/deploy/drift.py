"""Data drift of what the slots serve: the web side (services for the API, pages, events).

The worker keeps the summaries and computes the statistics (inference.drift); this module
asks it through the control API, names the versions, writes the audit rows of the changes
(an uploaded reference, a reset) and turns the worker's drift statuses into
``drift.status`` events for browsers. A worker's drift state lives in its memory: after a
restart the references are learned again from the first requests (or uploaded again).

With several workers serving a slot, each compares the requests it answered with its
own reference: their summaries cannot be added up (each has its own bin edges, learned
from its own first requests), and a drift seen by one worker is a drift. So the report
is the worst worker's, named in ``worker``, with every worker's status in ``workers``;
an uploaded reference and a reset go to every one of them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.deploy.client import WorkerRefused
from modelmgr.deploy.fleet import slot_members
from modelmgr.deploy.plan import as_actor
from modelmgr.deploy.slots import slot_get
from modelmgr.events import LOCAL_GROUP, events_publish
from modelmgr.exceptions import Forbidden, ModelmgrError, WorkerUnavailable
from modelmgr.models import ModelVersion
from modelmgr.registry.validation import InvalidInput

log = logging.getLogger(__name__)

STATUS_WORDS = {
    "no data": "no requests yet",
    "learning": "learning its reference",
    "collecting": "collecting a current window",
    "ok": "ok",
    "warning": "warning",
    "drift": "drift",
}


# Worse last: the slot's report is its worst worker's.
SEVERITY = ("no data", "learning", "collecting", "ok", "warning", "drift")


class SlotNotServed(ModelmgrError):
    status = 409


class NotEveryWorker(ModelmgrError):
    """A change some workers took and others did not: says which."""

    status = 503


def _require_drift_change(actor, slot) -> None:
    """Staff, users with ``change_slot``, and the owner of the version the slot serves
    may change its drift reference (everyone who may read the slot sees its drift)."""
    actor = as_actor(actor)
    served = slot.active_version
    if actor.is_staff or actor.is_superuser or actor.has_perm("modelmgr.change_slot"):
        return
    if served is not None and served.model.owner_id == actor.pk:
        return
    raise Forbidden(
        f"only staff, users with the change_slot permission, or the owner of the version "
        f"slot {slot.name} serves may change its drift reference"
    )


def _path(slot: str, action: str = "") -> str:
    return f"/drift/{quote(slot, safe='')}" + (f"/{action}" if action else "")


def _named(report: dict[str, Any]) -> dict[str, Any]:
    """Add each version's ``ref`` (name@version) to the worker's report."""
    ids = {v.get("version_id") for v in report.get("versions") or []}
    ids.add(report.get("version_id"))
    refs = {
        v.pk: v.ref
        for v in ModelVersion.objects.filter(pk__in=[i for i in ids if i]).select_related("model")
    }
    report["ref"] = refs.get(report.get("version_id"))
    for version in report.get("versions") or []:
        version["ref"] = refs.get(version.get("version_id"))
    return report


def _severity(report: dict[str, Any]) -> int:
    status = report.get("status")
    return SEVERITY.index(status) if status in SEVERITY else 0


def worst_worker(reports: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """(worker, report) of the worst drift status among each worker's report of one
    slot: the slot's status everywhere it is shown (the first of equals)."""
    return max(reports, key=lambda pair: _severity(pair[1]))


def _fleet_report(slot_name: str) -> dict[str, Any]:
    """The worst worker's report, with ``worker`` (its name) and ``workers`` (each one's
    name, reachable, detail, status, moved). A worker that does not answer is listed;
    when none answers, the (last) error is raised."""
    members = slot_members(slot_name)
    answered: list[tuple[str, dict[str, Any]]] = []
    workers: list[dict[str, Any]] = []
    error: ModelmgrError | None = None
    for member in members:
        try:
            report = member.client.call("GET", _path(slot_name))
        except ModelmgrError as exc:
            error = exc
            workers.append({"name": member.name, "reachable": False, "detail": exc.detail})
            continue
        answered.append((member.name, report))
        workers.append(
            {
                "name": member.name,
                "reachable": True,
                "detail": "",
                "status": report.get("status"),
                "moved": report.get("moved") or [],
            }
        )
    if not answered:
        raise error or WorkerUnavailable(f"no inference worker is up for slot {slot_name}")
    name, worst = worst_worker(answered)
    return {**worst, "worker": name, "workers": workers}


def _on_every_worker(
    slot_name: str, path: str, payload: dict[str, Any], *, what: str, timeout: float | None = None
) -> dict[str, Any]:
    """POST a drift change to every worker serving the slot; the first one's answer. One
    worker (or all failing): the first error as it is. Some taking it and some not: 503
    naming both."""
    done, failed, answers = [], [], []
    for member in slot_members(slot_name):
        try:
            answers.append(member.client.call("POST", path, payload, timeout=timeout))
            done.append(member.name)
        except ModelmgrError as exc:
            failed.append((member.name, exc))
    if failed and not done:
        raise failed[0][1]
    if failed:
        names = ", ".join(f"{name} ({exc.detail})" for name, exc in failed)
        raise NotEveryWorker(
            f"{what} of slot {slot_name} was taken by {', '.join(done)} but not by {names}: "
            "try again once they answer"
        )
    return answers[0]


def slot_drift(*, slot_name: str) -> dict[str, Any]:
    """The slot's drift report: status, thresholds, per version the features compared;
    with several workers, the worst one's (see the module docstring)."""
    slot = slot_get(name=slot_name)
    return _named(_fleet_report(slot.name))


def slot_drift_reference_set(
    *, slot_name: str, inputs: Any, actor, actor_label: str | None = None
) -> dict[str, Any]:
    """Make ``inputs`` (``{name: nested lists}``, one row per sample) the reference of the
    version the slot serves; the worker runs the model on it for the outputs' reference."""
    slot = slot_get(name=slot_name)
    if slot.active_version is None:
        raise SlotNotServed(f"slot {slot.name} serves nothing: a reference sample needs a version")
    _require_drift_change(actor, slot)
    if not isinstance(inputs, dict) or not inputs:
        raise InvalidInput('a reference sample is {"inputs": {name: nested lists}}')
    try:
        result = _on_every_worker(
            slot.name,
            _path(slot.name, "reference"),
            {"inputs": inputs},
            what="the reference sample",
            timeout=120,
        )
    except WorkerRefused as exc:
        if exc.status == 404:
            raise SlotNotServed(
                f"slot {slot.name} serves nothing in the worker now: a reference sample needs "
                "a served version"
            ) from None
        raise
    with transaction.atomic():
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.drift_reference",
            target_type="slot",
            target=slot.name,
            after={"version_id": result.get("version_id"), "rows": result.get("rows")},
        )
    return _named(_fleet_report(slot.name))


def slot_drift_reset(
    *, slot_name: str, reference_requests: Any = None, actor, actor_label: str | None = None
) -> dict[str, Any]:
    """Forget the slot's references: its next ``reference_requests`` requests (the
    configured N when None) are the new reference."""
    slot = slot_get(name=slot_name)
    _require_drift_change(actor, slot)
    if reference_requests is not None and (
        not isinstance(reference_requests, int)
        or isinstance(reference_requests, bool)
        or reference_requests < 1
    ):
        raise InvalidInput(
            f"reference_requests must be a positive integer, got {reference_requests!r}"
        )
    payload = {"reference_requests": reference_requests}
    report = _on_every_worker(slot.name, _path(slot.name, "reset"), payload, what="the reset")
    with transaction.atomic():
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.drift_reset",
            target_type="slot",
            target=slot.name,
            after={"reference_requests": report.get("reference_requests")},
        )
    return _named(report)


# --- live events ---------------------------------------------------------------------------
_seen: dict[tuple[str, str], dict] = {}  # (worker, slot) -> that worker's last drift status
_told: dict[str, dict] = {}  # slot -> the worst status last told (or first seen)
_last_lock = threading.Lock()


def drift_events_forget() -> None:
    """Forget every status seen (a test starting afresh)."""
    with _last_lock:
        _seen.clear()
        _told.clear()


def drift_events_from_status(status: dict[str, Any], worker: str = "") -> list[dict[str, Any]]:
    """Publish ``drift.status`` for each slot whose drift status changed, the status of a
    slot being its worst worker's (the worker.state relay calls this with each worker's
    status as it comes; an event names the worker whose status it carries); returns
    them. A slot first seen healthy says nothing."""
    current = status.get("data_drift") if isinstance(status, dict) else None
    if not isinstance(current, dict):
        return []
    events = []
    with _last_lock:
        gone = {slot for (name, slot) in _seen if name == worker and slot not in current}
        for slot in gone:
            del _seen[(worker, slot)]
        for slot, now in current.items():
            _seen[(worker, slot)] = now
        for slot in sorted(set(current) | gone):
            by_worker = [(name, now) for (name, s), now in _seen.items() if s == slot]
            if not by_worker:
                _told.pop(slot, None)
                continue
            name, worst = worst_worker(by_worker)
            before = _told.get(slot)
            if before is not None and before.get("status") == worst.get("status"):
                continue
            _told[slot] = worst
            if before is None and worst.get("status") in ("learning", "collecting", "ok"):
                continue
            events.append(
                {
                    "slot": slot,
                    "worker": name,
                    "version_id": worst.get("version_id"),
                    "status": worst.get("status"),
                    "previous": (before or {}).get("status"),
                    "moved": list(worst.get("moved") or []),
                }
            )
    for event in events:
        events_publish("drift.status", event, group=LOCAL_GROUP)
    return events
