"""The fit preview: what a proposed switch would load, need and evict; nothing changes.

The same request as a switch (``{slot: ref}``), checked by the same planner (unknown
slots or versions, contract misfits and permissions answer as a switch would: 4xx
naming the slot), then the worker simulates the loads on its own pool with its own
estimates and eviction order (inference.fit): least recently used first among the
cached models no slot serves and nobody pinned.
"""

from __future__ import annotations

from typing import Any

from modelmgr.deploy.plan import Target, plan_build
from modelmgr.exceptions import ModelmgrError
from modelmgr.registry.memory_estimate import estimate_memory


def worker_fit(version_ids: list[int]) -> tuple[dict[str, Any] | None, str]:
    """The worker's ``POST /preview`` for these versions, or (None, why not)."""
    from modelmgr.deploy.client import worker_client

    try:
        return worker_client().call("POST", "/preview", {"version_ids": version_ids}), ""
    except ModelmgrError as exc:
        return None, exc.detail


def switch_preview(*, targets: dict[str, Target], actor) -> dict[str, Any]:
    """Per slot: what it serves, what it would serve, whether that needs a load, the
    memory needed (the worker's estimate, and the registry's with how it was made), and
    the quality-gate failures a switch would have to force. Overall: the worker's
    memory now, the cached models evicted in order, whether everything fits.

    ``worker.reachable`` false: no worker answered; the registry's estimates are still
    given, ``fits`` and ``evictions`` are unknown (null / empty).
    """
    steps = plan_build(targets=targets, actor=actor, force=True)
    to_load: list[int] = []
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
        if target is not None and not step.unchanged and target.pk not in to_load:
            to_load.append(target.pk)
    fit, error = worker_fit(to_load)
    by_id = {v["version_id"]: v for v in (fit or {}).get("versions") or []}
    for step in steps:
        found = by_id.get(step.target.pk) if step.target is not None else None
        if found is not None and slots[step.slot.name]["load"]:
            slots[step.slot.name].update(
                needed_bytes=found["needed_bytes"],
                loaded=found["loaded"],
                fits=found["fits"],
                detail=found["detail"],
            )
    return {
        "slots": slots,
        "worker": {"reachable": fit is not None, "error": error},
        "memory": (fit or {}).get("memory"),
        "evictions": (fit or {}).get("evictions") or [],
        "fits": fit.get("fits") if fit is not None else None,
        "free_after_bytes": fit.get("free_after_bytes") if fit is not None else None,
    }
