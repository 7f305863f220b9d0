"""What the workers report, beside what the database wants: status pages and /api/v1/status."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from modelmgr.deploy.fleet import (
    Member,
    fallback_member,
    fleet_members,
    fleet_up,
    placement,
    serves,
)
from modelmgr.exceptions import ModelmgrError
from modelmgr.metrics import worker_seen
from modelmgr.models import Slot

log = logging.getLogger(__name__)


def worker_entry(member: Member, **facts: Any) -> dict[str, Any]:
    return {
        "name": member.name,
        "url": member.client.label if not member.registered else member.control_url,
        "serve_url": member.serve_url,
        "group": member.group,
        "registered": member.registered,
        "up": member.up,
        "heartbeat_at": member.heartbeat_at.isoformat() if member.heartbeat_at else None,
        "started_at": member.started_at.isoformat() if member.started_at else None,
        **facts,
    }


def _asked(member: Member) -> dict[str, Any]:
    try:
        status = member.client.status()
    except ModelmgrError as exc:
        return worker_entry(member, reachable=False, error=exc.detail, status=None)
    return worker_entry(member, reachable=True, error="", status=status)


def worker_down_entry(member: Member) -> dict[str, Any]:
    when = member.heartbeat_at.isoformat(timespec="seconds") if member.heartbeat_at else "never"
    error = f"down: no heartbeat since {when}"
    return worker_entry(member, reachable=False, error=error, status=None)


def workers_status() -> list[dict[str, Any]]:
    """One entry per worker: every registered one (modelmgr.deploy.fleet), up ones
    first, each ``{"name", "url", "serve_url", "group", "up", "heartbeat_at",
    "reachable", "error", "status"}``; with none up, the MODELMGR_WORKER_URL worker
    first, as with a single worker.

    ``status`` is the worker's GET /status (ready, device, memory, slots, models, errors)
    or None when it could not be read (a down worker is not asked); ``error`` then says
    why. The up workers are asked at once. Never raises.
    """
    members = fleet_members()
    up = [member for member in members if member.up]
    down = [member for member in members if not member.up]
    if not up:
        fallback = fallback_member()
        down = [m for m in down if m.control_url != fallback.control_url]
        up = [fallback]
    entries = _ask_all(up)
    worker_seen(entries[0]["status"])
    return entries + [worker_down_entry(member) for member in down]


def _ask_all(members: list[Member]) -> list[dict[str, Any]]:
    """Each member's entry (``status`` or ``error``), the members asked at once."""
    with ThreadPoolExecutor(min(len(members), 8)) as pool:
        return list(pool.map(_asked, members))


def up_workers_asked() -> list[tuple[Member, dict[str, Any]]]:
    """Each up worker (the MODELMGR_WORKER_URL one when none is) with its entry."""
    members = fleet_up()
    return list(zip(members, _ask_all(members), strict=True))


def memory_where(
    asked: list[tuple[Member, dict[str, Any]]], slot: str = ""
) -> tuple[int | None, set[int], int]:
    """What a version must fit into to serve ``slot`` (any slot when empty): the least
    free memory among the workers that answered and serve it, the versions every one
    of them holds already (loaded on one but not another still needs memory), and how
    many answered. (None, set(), 0) when none of them answered."""
    groups = placement([slot]) if slot else {}
    answered = [
        entry["status"]
        for member, entry in asked
        if entry["status"] is not None and serves(member, slot, groups)
    ]
    frees = [(s.get("memory") or {}).get("free_bytes") for s in answered]
    frees = [free for free in frees if isinstance(free, int)]
    if not frees:
        return None, set(), 0
    held = [{m.get("version_id") for m in s.get("models") or []} - {None} for s in answered]
    return min(frees), set.intersection(*held), len(answered)


def worker_nudge() -> bool:
    """Tell the workers the desired state changed (a pin, a placement), so they
    reconcile now rather than at their next periodic pass. A nudge, not a command: the
    database is the truth, so a worker that does not answer is logged and otherwise
    ignored (it catches up on its periodic reconcile). Never raises; returns whether
    every up worker heard it.
    """
    heard = True
    for member in fleet_up():
        try:
            member.client.nudge()
        except Exception as exc:  # noqa: BLE001 - runs after commit: the change is made
            log.warning(
                "could not nudge the worker at %s to reconcile (its periodic reconcile will "
                "catch up): %s",
                member.client.label if not member.registered else member.control_url,
                exc.detail if isinstance(exc, ModelmgrError) else repr(exc),
            )
            heard = False
    return heard


def _desired_rows() -> list[Slot]:
    return list(Slot.objects.select_related("active_version__model__owner").order_by("name"))


def deploy_status() -> dict[str, Any]:
    """The worker's status and, per slot, desired (database) vs actual (worker) version.

    ``drift`` is true where the worker serves something other than the database names
    (a switch in flight, a failed restore, a version the worker could not load), false
    where they agree, and null when the worker cannot be asked. Slots the worker serves
    that the database does not have are listed too (``desired`` null).
    """
    workers = workers_status()
    worker = next((w for w in workers if w["reachable"]), workers[0])
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
        "workers": workers,
        "slots": slots,
        "in_sync": None if not reachable else not drifting,
        "drifting": drifting,
    }
