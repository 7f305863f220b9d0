"""Drift gauges on the worker's /metrics, read from the monitor at scrape time.

- ``modelmgr_drift_status{slot,version}``: 0 ok (or still learning / collecting),
  1 warning, 2 drift; of every slot version the monitor keeps.
- ``modelmgr_drift_psi{slot,version,io,feature}`` and
  ``modelmgr_drift_ks_pvalue{slot,version,io,feature}``: per feature with a verdict.
- ``modelmgr_drift_reference_complete{slot,version}``: 1 once the reference is fitted.

Labels are bounded: slots the worker serves, VERSIONS_PER_SLOT versions each, and at
most MODELMGR_DRIFT_MAX_FEATURES features per tensor.
"""

from __future__ import annotations

import weakref

from prometheus_client.core import GaugeMetricFamily

from inference.drift.tracker import SEVERITY
from inference.metrics import REGISTRY


class DriftCollector:
    def __init__(self):
        self._monitor: weakref.ref | None = None

    def watch(self, monitor) -> None:
        self._monitor = weakref.ref(monitor)

    def describe(self):
        return []

    def collect(self):
        monitor = self._monitor() if self._monitor is not None else None
        if monitor is None:
            return
        with monitor.lock:
            reports = [t.evaluate(monitor.thresholds) for t in monitor.trackers.values()]
        status = GaugeMetricFamily(
            "modelmgr_drift_status",
            "Data drift of a slot version: 0 ok (or learning its reference), 1 warning, 2 drift.",
            labels=["slot", "version"],
        )
        complete = GaugeMetricFamily(
            "modelmgr_drift_reference_complete",
            "1 once the slot version's drift reference is fitted.",
            labels=["slot", "version"],
        )
        psi = GaugeMetricFamily(
            "modelmgr_drift_psi",
            "Population stability index of a feature: current window against the reference.",
            labels=["slot", "version", "io", "feature"],
        )
        pvalue = GaugeMetricFamily(
            "modelmgr_drift_ks_pvalue",
            "Two-sample Kolmogorov-Smirnov p-value of a feature against the reference.",
            labels=["slot", "version", "io", "feature"],
        )
        for report in sorted(reports, key=lambda r: (r["slot"], r["version_id"])):
            labels = [report["slot"], str(report["version_id"])]
            status.add_metric(labels, SEVERITY[report["status"]])
            complete.add_metric(labels, int(report["reference"]["complete"]))
            for feature in report["features"]:
                if feature["psi"] is None:
                    continue
                names = [*labels, feature["io"], feature["feature"]]
                psi.add_metric(names, feature["psi"])
                pvalue.add_metric(names, feature["ks_pvalue"])
        yield from (status, complete, psi, pvalue)


DRIFT_COLLECTOR = DriftCollector()
REGISTRY.register(DRIFT_COLLECTOR)


def drift_metrics_watch(monitor) -> None:
    """Export ``monitor``'s drift (the last monitor watched wins, like metrics_watch)."""
    DRIFT_COLLECTOR.watch(monitor)
