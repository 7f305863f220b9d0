"""The fit preview: what a proposed switch would load, need and evict; nothing changes.

The same request as a switch (``{slot: ref}``), checked by the same planner (unknown
slots or versions, contract misfits and permissions answer as a switch would: 4xx
naming the slot), then the worker simulates the loads on its own pool with its own
estimates and eviction order (inference.fit): least recently used first among the
cached models no slot serves and nobody pinned.
"""

from __future__ import annotations

from typing import Any

from modelmgr.deploy.fleet import Member, switch_targets_for
from modelmgr.deploy.plan import Target, plan_build
from modelmgr.exceptions import ModelmgrError
from modelmgr.registry.memory_estimate import estimate_memory


def member_fit(member: Member, version_ids: list[int]) -> tuple[dict[str, Any] | None, str]:
    """One worker's ``POST /preview`` for these versions, or (None, why not)."""
    try:
        return member.client.call("POST", "/preview", {"version_ids": version_ids}), ""
    except ModelmgrError as exc:
        return None, exc.detail


def fleet_fit(slots: dict[str, int | None], loads: dict[str, int]) -> tuple[list[dict], str]:
    """Each worker the switch would go to (modelmgr.deploy.fleet placement), with its
    ``POST /preview`` for the versions its slots would load: ``name``, ``slots``,
    ``fit`` (None when it did not answer) and ``error``. ([], why) when no worker is up
    for a slot."""
    try:
        targets, _ = switch_targets_for(slots)
    except ModelmgrError as exc:
        return [], exc.detail
    answers = []
    for member, mine in targets:
        version_ids = list(dict.fromkeys(loads[slot] for slot in mine if slot in loads))
        fit, error = member_fit(member, version_ids)
        answers.append({"name": member.name, "slots": list(mine), "fit": fit, "error": error})
    return answers, ""


def _worker_line(answer: dict[str, Any]) -> dict[str, Any]:
    fit = answer["fit"] or {}
    return {
        "name": answer["name"],
        "reachable": answer["fit"] is not None,
        "error": answer["error"],
        "slots": answer["slots"],
        "memory": fit.get("memory"),
        "evictions": fit.get("evictions") or [],
        "fits": fit.get("fits") if answer["fit"] is not None else None,
        "free_after_bytes": fit.get("free_after_bytes"),
    }


def _all_true(values: list[bool | None]) -> bool | None:
    """False when any is False, None when any is unknown (or none at all), else True."""
    if any(value is False for value in values):
        return False
    if not values or any(value is None for value in values):
        return None
    return True


def switch_preview(*, targets: dict[str, Target], actor) -> dict[str, Any]:
    """Per slot: what it serves, what it would serve, whether that needs a load, the
    memory needed (the worker's estimate, and the registry's with how it was made), and
    the quality-gate failures a switch would have to force. Overall: the workers'
    memory now, the cached models each would evict in order, whether everything fits.

    Every worker the switch would go to is asked about the slots placed on it
    (``workers``, one line each); a slot fits when it fits on each of them. ``memory`` is
    the first worker's; ``evictions`` name their ``worker``; ``free_after_bytes`` is the
    least any worker would have left.

    ``worker.reachable`` false: a worker did not answer (``error`` names it); the
    registry's estimates are still given, and what that worker would do is unknown
    (``fits`` null).
    """
    steps = plan_build(targets=targets, actor=actor, force=True)
    loads: dict[str, int] = {}  # slot -> the version it would load
    slots: dict[str, dict[str, Any]] = {}
    for step in steps:
        target = step.target
        estimate = estimate_memory(target) if target is not None else None
        slots[step.slot.name] = {
            "current": step.current.ref if step.current else None,
            "target": target.ref if target else None,
            "unchanged": step.unchanged,
            "load": bool(target is not None and not step.unchanged),
            "estimate_bytes": estimate.total_bytes if estimate else 0,
            "estimate_how": estimate.how if estimate else "",
            "needed_bytes": None,
            "loaded": None,
            "fits": None,
            "detail": "",
            "gate_failures": step.overridden,
        }
        if target is not None and not step.unchanged:
            loads[step.slot.name] = target.pk
    answers, error = fleet_fit(
        {step.slot.name: step.target.pk if step.target else None for step in steps}, loads
    )
    workers = [_worker_line(answer) for answer in answers]
    several = len(workers) > 1
    for name, slot in slots.items():
        if not slot["load"]:
            continue
        found = [
            (answer["name"], version)
            for answer in answers
            if name in answer["slots"]
            for version in (answer["fit"] or {}).get("versions") or []
            if version["version_id"] == loads[name]
        ]
        if not found:
            continue
        refused = [(worker, version) for worker, version in found if version["fits"] is False]
        said = refused or found  # where it does not fit, that is the news
        slot.update(
            needed_bytes=max(version["needed_bytes"] for _, version in found),
            loaded=all(version["loaded"] for _, version in found),
            fits=_all_true([version["fits"] for _, version in found]),
            detail="; ".join(
                f"{worker}: {version['detail']}" if several else version["detail"]
                for worker, version in said
                if version["detail"]
            ),
        )
    silent = [line for line in workers if not line["reachable"]]
    errors = [f"{line['name']}: {line['error']}" if several else line["error"] for line in silent]
    reached = [line for line in workers if line["reachable"]]
    return {
        "slots": slots,
        "worker": {
            "reachable": bool(workers) and not silent,
            "error": error or "; ".join(errors),
        },
        "workers": workers,
        "memory": reached[0]["memory"] if reached else None,
        "evictions": [
            {**eviction, "worker": line["name"]}
            for line in workers
            for eviction in line["evictions"]
        ],
        "fits": _all_true([line["fits"] for line in workers]) if workers else None,
        "free_after_bytes": min(
            (line["free_after_bytes"] for line in reached if line["free_after_bytes"] is not None),
            default=None,
        ),
    }
