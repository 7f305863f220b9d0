"""Per-arm statistics of a slot (primary, canary, shadow) side by side, as the worker
counts them since each arm started serving its version (inference.arms).

``slot_arms`` is the one reader: the API, the settings page and any watcher of a canary
(a health gate deciding to promote or roll back) call it.
"""

from __future__ import annotations

from typing import Any

from modelmgr.deploy.client import worker_client
from modelmgr.exceptions import ModelmgrError, NotFound
from modelmgr.models import Slot

ARMS = ("primary", "canary", "shadow")


def _empty(ref: str | None, version_id: int | None) -> dict[str, Any]:
    return {
        "ref": ref,
        "version_id": version_id,
        "requests": 0,
        "errors": 0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
    }


def slot_arms(slot: str) -> dict[str, Any]:
    """{"slot", "worker": {"reachable", "detail"}, "arms": {arm: figures}} for the arms
    the database gives the slot. Figures: ``requests``, ``errors``, ``error_rate``,
    ``p50_ms``/``p95_ms``/``p99_ms`` (successful runs), the canary's ``share``; the shadow's
    ``compared``, ``agreement`` (outputs equal within tolerance) and ``argmax_agreement``
    (same class per row), ``skipped``. An arm the worker does not serve yet (a change in
    flight, or the worker down) shows zeros and ``serving: false``. Raises NotFound."""
    row = (
        Slot.objects.select_related(
            "active_version__model", "canary_version__model", "shadow_version__model"
        )
        .filter(name=slot)
        .first()
    )
    if row is None:
        raise NotFound(f"there is no slot named {slot!r}")
    wanted = {"primary": row.active_version, "canary": row.canary_version}
    wanted["shadow"] = row.shadow_version
    worker: dict[str, Any] = {"reachable": True, "detail": ""}
    try:
        live = worker_client().call("GET", "/arms").get("slots", {}).get(slot, {})
    except ModelmgrError as exc:
        live, worker = {}, {"reachable": False, "detail": exc.detail}
    arms: dict[str, Any] = {}
    for arm in ARMS:
        version = wanted[arm]
        if version is None or row.active_version is None:
            continue
        figures = live.get(arm)
        serving = bool(figures) and figures.get("version_id") == version.pk
        figures = dict(figures) if serving else _empty(version.ref, version.pk)
        figures.update(ref=version.ref, serving=serving)
        requests = figures["requests"]
        figures["error_rate"] = round(figures["errors"] / requests, 4) if requests else None
        if arm == "canary":
            figures["share"] = row.canary_share
        arms[arm] = figures
    return {"slot": slot, "worker": worker, "arms": arms}
