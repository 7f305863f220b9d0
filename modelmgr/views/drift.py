"""The model page's data drift panel: per slot serving the version, its status and the
reference vs current histograms of the features that moved most (modelmgr.deploy.drift)."""

from __future__ import annotations

import json
from typing import Any

from modelmgr.deploy.drift import STATUS_WORDS, slot_drift
from modelmgr.exceptions import ModelmgrError


def _label(edges: list[float], index: int) -> str:
    if not edges:
        return "all"
    if index == 0:
        return f"< {edges[0]:.3g}"
    if index >= len(edges):
        return f"≥ {edges[-1]:.3g}"
    return f"{edges[index - 1]:.3g} – {edges[index]:.3g}"


def _plot(histogram: dict[str, Any]) -> str:
    edges = histogram.get("edges") or []
    labels = [_label(edges, i) for i in range(len(histogram.get("reference") or []))]
    return json.dumps(
        {
            "labels": labels,
            # Axis ticks: each bin's lower edge (the first bin is open below).
            "ticks": [f"<{edges[0]:.2g}"] + [f"{e:.2g}" for e in edges] if edges else ["all"],
            "reference": histogram.get("reference") or [],
            "current": histogram.get("current") or [],
        }
    )


def drift_for_version(version_id: int, slots: list[str]) -> list[dict[str, Any]]:
    """One panel per slot: ``{"slot", "status", "words", "tracker", "plots", "error"}``."""
    panels = []
    for slot in slots:
        panel: dict[str, Any] = {"slot": slot, "status": "no data", "tracker": None, "plots": []}
        try:
            report = slot_drift(slot_name=slot)
        except ModelmgrError as exc:
            panel["error"] = exc.detail
            panels.append(panel)
            continue
        tracker = next(
            (v for v in report.get("versions") or [] if v.get("version_id") == version_id), None
        )
        if tracker is not None:
            panel["status"] = tracker["status"]
            panel["tracker"] = tracker
            panel["plots"] = [
                {**feature, "spec": _plot(feature["histogram"])}
                for feature in tracker.get("features") or []
                if feature.get("histogram")
            ]
        panel["thresholds"] = report.get("thresholds") or {}
        panel["reference_requests"] = report.get("reference_requests")
        panel["words"] = STATUS_WORDS.get(panel["status"], panel["status"])
        panels.append(panel)
    return panels
