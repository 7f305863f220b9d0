"""What the workers report, beside what the database wants: status pages and /api/v1/status."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from modelmgr.deploy.client import worker_client
from modelmgr.exceptions import ModelmgrError
from modelmgr.metrics import worker_seen
from modelmgr.models import Slot

log = logging.getLogger(__name__)


def workers_status() -> list[dict[str, Any]]:
    """One entry per worker (one today): ``{"url", "reachable", "error", "status"}``.

    ``status`` is the worker's GET /status (ready, device, memory, slots, models, errors)
    or None when it could not be read; ``error`` then says why. Never raises.
    """
    client = worker_client()
    try:
        status = client.status()
    except ModelmgrError as exc:
        worker_seen(None)
        return [{"url": client.label, "reachable": False, "error": exc.detail, "status": None}]
    worker_seen(status)
    return [{"url": client.label, "reachable": True, "error": "", "status": status}]


def worker_nudge() -> bool:
    """Tell the worker the desired state changed (a pin, today), so it reconciles now
    rather than at its next periodic pass. A nudge, not a command: the database is the
    truth, so a worker that does not answer is logged and otherwise ignored (it
    catches up on its periodic reconcile). Never raises; returns whether it was heard.
    """
    try:
        worker_client().nudge()
    except Exception as exc:  # noqa: BLE001 - runs after commit: the change is made
        log.warning(
            "could not nudge the worker at %s to reconcile (its periodic reconcile will "
            "catch up): %s",
            settings.MODELMGR_WORKER_URL,
            exc.detail if isinstance(exc, ModelmgrError) else repr(exc),
        )
        return False
    return True


def _desired_rows() -> list[Slot]:
    return list(Slot.objects.select_related("active_version__model__owner").order_by("name"))


def deploy_status() -> dict[str, Any]:
    """The worker's status and, per slot, desired (database) vs actual (worker) version.

    ``drift`` is true where the worker serves something other than the database names
    (a switch in flight, a failed restore, a version the worker could not load), false
    where they agree, and null when the worker cannot be asked. Slots the worker serves
    that the database does not have are listed too (``desired`` null).
    """
    worker = workers_status()[0]
    status = worker["status"] or {}
    actual: dict[str, Any] = status.get("slots") or {}
    errors: dict[str, str] = status.get("errors") or {}
    reachable = worker["reachable"]
    slots = []
    names: set[str] = set()
    for slot in _desired_rows():
        names.add(slot.name)
        desired = slot.active_version
        served = actual.get(slot.name)
        served_id = served.get("version_id") if isinstance(served, dict) else None
        slots.append(
            {
                "slot": slot.name,
                "task": slot.task,
                "desired": None
                if desired is None
                else {
                    "version_id": desired.pk,
                    "ref": desired.ref,
                    "owner": desired.model.owner.get_username(),
                },
                "actual": served if isinstance(served, dict) else None,
                "error": errors.get(slot.name, ""),
                "drift": None if not reachable else (desired.pk if desired else None) != served_id,
            }
        )
    for name in sorted(set(actual) - names):
        served = actual[name]
        slots.append(
            {
                "slot": name,
                "task": None,
                "desired": None,
                "actual": served if isinstance(served, dict) else None,
                "error": errors.get(name, ""),
                "drift": bool(served),
            }
        )
    drifting = [s["slot"] for s in slots if s["drift"]]
    return {
        "worker": worker,
        "slots": slots,
        "in_sync": None if not reachable else not drifting,
        "drifting": drifting,
    }
