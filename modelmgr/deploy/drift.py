"""Data drift of what the slots serve: the web side (services for the API, pages, events).

The worker keeps the summaries and computes the statistics (inference.drift); this module
asks it through the control API, names the versions, writes the audit rows of the changes
(an uploaded reference, a reset) and turns the worker's drift statuses into
``drift.status`` events for browsers. A worker's drift state lives in its memory: after a
restart the references are learned again from the first requests (or uploaded again).
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.deploy.client import WorkerRefused, worker_client
from modelmgr.deploy.plan import as_actor
from modelmgr.deploy.slots import slot_get
from modelmgr.events import LOCAL_GROUP, events_publish
from modelmgr.exceptions import Forbidden, ModelmgrError
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


class SlotNotServed(ModelmgrError):
    status = 409


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


def slot_drift(*, slot_name: str) -> dict[str, Any]:
    """The slot's drift report: status, thresholds, per version the features compared."""
    slot = slot_get(name=slot_name)
    return _named(worker_client().call("GET", _path(slot.name)))


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
        result = worker_client().call(
            "POST", _path(slot.name, "reference"), {"inputs": inputs}, timeout=120
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
    return _named(worker_client().call("GET", _path(slot.name)))


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
    report = worker_client().call("POST", _path(slot.name, "reset"), payload)
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
_last: dict[str, dict] = {}
_last_lock = threading.Lock()


def drift_events_from_status(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Publish ``drift.status`` for each slot whose drift status changed since the last
    worker status this process saw (the worker.state relay calls it); returns them."""
    current = status.get("data_drift") if isinstance(status, dict) else None
    if not isinstance(current, dict):
        return []
    events = []
    with _last_lock:
        for slot, now in sorted(current.items()):
            before = _last.get(slot)
            if before is not None and before.get("status") == now.get("status"):
                continue
            if before is None and now.get("status") in ("learning", "collecting", "ok"):
                _last[slot] = now  # nothing to tell about a slot first seen healthy
                continue
            _last[slot] = now
            events.append(
                {
                    "slot": slot,
                    "version_id": now.get("version_id"),
                    "status": now.get("status"),
                    "previous": (before or {}).get("status"),
                    "moved": list(now.get("moved") or []),
                }
            )
        for slot in set(_last) - set(current):
            del _last[slot]
    for event in events:
        events_publish("drift.status", event, group=LOCAL_GROUP)
    return events
