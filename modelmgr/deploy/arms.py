"""Per-arm statistics of a slot (primary, canary, shadow) side by side, as the workers
count them since each arm started serving its version (inference.arms).

``slot_arms`` is the one reader: the API, the settings page and the command line call
it. With several workers serving the slot, each counts only the requests it answered:
every up worker that serves the slot is asked, and the arms are merged. Counts add up;
the percentiles are taken over the union of the workers' kept latencies (asked for
with ``?samples=1`` only then), so they are what one worker serving everything would
have reported.
"""

from __future__ import annotations

import math
from typing import Any

from modelmgr.deploy.fleet import Member, slot_members
from modelmgr.exceptions import ModelmgrError, NotFound
from modelmgr.models import Slot

ARMS = ("primary", "canary", "shadow")
SUMMED = ("requests", "errors", "skipped", "compared", "matched", "same_argmax")


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


def percentile(ordered: list[float], q: float) -> float | None:
    """numpy's default (linear) percentile of sorted values; None when there are none."""
    if not ordered:
        return None
    at = (len(ordered) - 1) * q / 100
    low, high = math.floor(at), math.ceil(at)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (at - low), 4)


def _merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm's figures from several workers' (a single worker's as they are)."""
    if len(parts) == 1:
        return {k: v for k, v in parts[0].items() if k != "latencies_ms"}
    merged = dict(parts[0])
    merged.pop("latencies_ms", None)
    for key in SUMMED:
        if key in parts[0]:
            merged[key] = sum(part.get(key) or 0 for part in parts)
    ordered = sorted(v for part in parts for v in part.get("latencies_ms") or ())
    for q in (50, 95, 99):
        merged[f"p{q}_ms"] = percentile(ordered, q)
    if "compared" in merged:
        compared = merged["compared"]
        for key, count in (("agreement", "matched"), ("argmax_agreement", "same_argmax")):
            merged[key] = round(merged[count] / compared, 4) if compared else None
    return merged


def _ask(members: list[Member], slot: str) -> tuple[list[dict], list[dict[str, Any]]]:
    """Each member's arms of ``slot``, and a line per member for the answer."""
    path = "/arms?samples=1" if len(members) > 1 else "/arms"
    answers, workers = [], []
    for member in members:
        try:
            live = member.client.call("GET", path).get("slots", {}).get(slot, {})
        except ModelmgrError as exc:
            workers.append({"name": member.name, "reachable": False, "detail": exc.detail})
            continue
        answers.append(live)
        workers.append({"name": member.name, "reachable": True, "detail": ""})
    return answers, workers


def slot_arms(slot: str) -> dict[str, Any]:
    """{"slot", "worker": {"reachable", "detail"}, "workers": [...], "arms": {arm:
    figures}} for the arms the database gives the slot. Figures: ``requests``,
    ``errors``, ``error_rate``, ``p50_ms``/``p95_ms``/``p99_ms`` (successful runs), the
    canary's ``share``; the shadow's ``compared``, ``agreement`` (outputs equal within
    tolerance) and ``argmax_agreement`` (same class per row), ``skipped``. An arm no
    worker serves yet (a change in flight, or the workers down) shows zeros and
    ``serving: false``. ``worker.reachable`` is false when any worker serving the slot
    did not answer (its figures are then missing; ``workers`` says which). Raises
    NotFound."""
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
    answers, workers = _ask(slot_members(slot), slot)
    silent = [w for w in workers if not w["reachable"]]
    worker = {
        "reachable": not silent,
        "detail": "; ".join(f"{w['name']}: {w['detail']}" for w in silent),
    }
    arms: dict[str, Any] = {}
    for arm in ARMS:
        version = wanted[arm]
        if version is None or row.active_version is None:
            continue
        parts = [
            live[arm] for live in answers if (live.get(arm) or {}).get("version_id") == version.pk
        ]
        figures = _merged(parts) if parts else _empty(version.ref, version.pk)
        figures.update(ref=version.ref, serving=bool(parts))
        requests = figures["requests"]
        figures["error_rate"] = round(figures["errors"] / requests, 4) if requests else None
        if arm == "canary":
            figures["share"] = row.canary_share
        arms[arm] = figures
    return {"slot": slot, "worker": worker, "workers": workers, "arms": arms}
