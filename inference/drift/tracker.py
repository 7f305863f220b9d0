"""One slot version's drift: a reference, fixed bins fitted on it, a rolling current window.

1. **Reference.** The first N requests the version serves (or an uploaded sample) are kept
   as per-feature values (at most MAX_ROWS rows) until the reference is complete.
2. **Fit.** Each feature gets FINE_BINS quantile bins of the reference (interior edges;
   the outer bins are open) and the reference's counts in them. The raw values are then
   dropped: from here on only counts and bin indices are kept.
3. **Current window.** Each later row is reduced to its bin index (one byte) in a ring as
   long as the reference (in rows): memory is bounded whatever the traffic.
4. **Compare.** Population stability index over deciles (every COARSE_EVERY fine bins:
   fewer bins keep PSI's small-sample bias, about (bins - 1) * (1/n + 1/m), well under the
   warning threshold) and the two-sample Kolmogorov–Smirnov test on the fine bins' CDFs
   (scipy.stats.kstwo, as scipy.stats.ks_2samp's asymptotic method computes it).
   A feature has moved when the change is both large (PSI) and significant (KS p-value):
   ``drift`` at PSI >= psi_drift, ``warning`` at PSI >= psi_warning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import kstwo

FINE_BINS = 40
COARSE_EVERY = 4  # 40 fine quantile bins -> 10 deciles for PSI
MAX_ROWS = 20_000
PSI_FLOOR = 1e-4  # an empty bin's share, so that PSI stays finite
SEVERITY = {"learning": 0, "collecting": 0, "ok": 0, "warning": 1, "drift": 2}
Key = tuple[str, str]  # ("input" | "output", feature name)


@dataclass(frozen=True)
class Thresholds:
    psi_warning: float = 0.1
    psi_drift: float = 0.25
    ks_p: float = 0.01
    min_rows: int = 30  # fewer current rows than this: "collecting", no verdict yet


class FeatureBins:
    """Fixed bins of one feature, fitted on its reference values."""

    def __init__(self, reference: np.ndarray):
        quantiles = np.quantile(reference, np.linspace(0, 1, FINE_BINS + 1)[1:-1])
        self.edges = np.unique(quantiles)
        coarse = np.unique(quantiles[COARSE_EVERY - 1 :: COARSE_EVERY])
        # Fine bin i holds [edges[i-1], edges[i]): its coarse bin is where its lower edge
        # falls among the coarse edges (a subset of the fine ones).
        lower = np.concatenate([[-np.inf], self.edges])
        self.coarse_of_fine = np.searchsorted(coarse, lower, side="right")
        self.coarse_count = len(coarse) + 1
        self.reference = self.counts(self.index(reference))

    @property
    def size(self) -> int:
        return len(self.edges) + 1

    def index(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, values, side="right").astype(np.uint8)

    def counts(self, indices: np.ndarray) -> np.ndarray:
        return np.bincount(indices, minlength=self.size).astype(np.int64)

    def coarse(self, counts: np.ndarray) -> np.ndarray:
        return np.bincount(self.coarse_of_fine, weights=counts, minlength=self.coarse_count)


class Ring:
    """The last ``size`` bin indices of one feature."""

    def __init__(self, size: int):
        self.values = np.zeros(size, dtype=np.uint8)
        self.position = 0
        self.filled = 0

    def push(self, indices: np.ndarray) -> None:
        size = len(self.values)
        if len(indices) >= size:
            self.values[:] = indices[-size:]
            self.position, self.filled = 0, size
            return
        end = self.position + len(indices)
        if end <= size:
            self.values[self.position : end] = indices
        else:
            split = size - self.position
            self.values[self.position :] = indices[:split]
            self.values[: end - size] = indices[split:]
        self.position = end % size
        self.filled = min(size, self.filled + len(indices))

    def current(self) -> np.ndarray:
        return self.values[: self.filled]


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    p = np.maximum(reference / max(reference.sum(), 1), PSI_FLOOR)
    q = np.maximum(current / max(current.sum(), 1), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of two samples given as counts in the same ordered bins."""
    n, m = float(reference.sum()), float(current.sum())
    statistic = float(np.max(np.abs(np.cumsum(reference) / n - np.cumsum(current) / m)))
    effective = np.round(n * m / (n + m))
    return statistic, float(np.clip(kstwo.sf(statistic, effective), 0.0, 1.0))


def feature_status(psi_value: float, p_value: float, thresholds: Thresholds) -> str:
    if p_value >= thresholds.ks_p:
        return "ok"
    if psi_value >= thresholds.psi_drift:
        return "drift"
    return "warning" if psi_value >= thresholds.psi_warning else "ok"


class VersionTracker:
    """Drift of one version on one slot (not thread-safe: the monitor holds its lock)."""

    def __init__(self, slot: str, version_id: int, *, reference_requests: int):
        self.slot = slot
        self.version_id = version_id
        self.reference_requests = max(1, reference_requests)
        self.reference_source = "requests"
        self.requests = 0  # requests summarised, reference included
        self.reference_seen = 0
        self.learning: dict[Key, list[np.ndarray]] = {}
        self.learned_rows: dict[Key, int] = {}
        self.bins: dict[Key, FeatureBins] | None = None
        self.rings: dict[Key, Ring] = {}
        self.started_at = time.time()
        self.fitted_at: float | None = None

    @property
    def reference_missing(self) -> int:
        """Requests the reference still needs (0 once fitted)."""
        return 0 if self.bins is not None else self.reference_requests - self.reference_seen

    def add(self, features: dict[Key, np.ndarray], *, requests: int = 1) -> None:
        """The rows of ``requests`` requests; during the reference, at most the requests
        it still needs (the monitor splits a batch there)."""
        self.requests += requests
        if self.bins is None:
            self.reference_seen += requests
            for key, values in features.items():
                values = values[np.isfinite(values)]
                room = MAX_ROWS - self.learned_rows.get(key, 0)
                if room > 0 and len(values):
                    self.learning.setdefault(key, []).append(values[:room].copy())
                    self.learned_rows[key] = self.learned_rows.get(key, 0) + min(room, len(values))
            if self.reference_seen >= self.reference_requests:
                self.fit({key: np.concatenate(parts) for key, parts in self.learning.items()})
            return
        for key, values in features.items():
            bins = self.bins.get(key)
            if bins is not None:
                values = values[np.isfinite(values)]
                self.rings[key].push(bins.index(values))

    def fit(self, reference: dict[Key, np.ndarray], *, source: str = "requests") -> None:
        self.bins = {key: FeatureBins(values) for key, values in reference.items() if len(values)}
        self.rings = {key: Ring(min(len(reference[key]), MAX_ROWS)) for key in self.bins}
        self.learning, self.learned_rows = {}, {}
        self.reference_source = source
        self.fitted_at = time.time()

    def evaluate(self, thresholds: Thresholds, *, histograms: int = 0) -> dict:
        """The report: status, per feature PSI / KS, the moved features first; the
        reference and current histograms of the ``histograms`` features that moved most."""
        report = {
            "slot": self.slot,
            "version_id": self.version_id,
            "requests": self.requests,
            "reference": {
                "source": self.reference_source,
                "requests": self.reference_seen if self.reference_source == "requests" else 0,
                "wanted_requests": self.reference_requests,
                "rows": int(sum(int(b.reference.sum()) for b in (self.bins or {}).values())),
                "complete": self.bins is not None,
            },
            "current_rows": 0,
            "features": [],
            "moved": [],
        }
        if self.bins is None:
            report["status"] = "learning"
            return report
        features = []
        for (io, name), bins in self.bins.items():
            counts = bins.counts(self.rings[(io, name)].current())
            rows = int(counts.sum())
            entry = {"feature": name, "io": io, "current_rows": rows}
            if rows < thresholds.min_rows:
                entry.update(psi=None, ks_statistic=None, ks_pvalue=None, status="collecting")
            else:
                psi_value = psi(bins.coarse(bins.reference), bins.coarse(counts))
                statistic, p_value = ks_test(bins.reference, counts)
                entry.update(
                    psi=round(psi_value, 6),
                    ks_statistic=round(statistic, 6),
                    ks_pvalue=p_value,
                    status=feature_status(psi_value, p_value, thresholds),
                )
            entry["_counts"] = counts
            entry["_bins"] = bins
            features.append(entry)
        features.sort(key=lambda f: (-SEVERITY[f["status"]], -(f["psi"] or 0.0)))
        for index, entry in enumerate(features):
            bins, counts = entry.pop("_bins"), entry.pop("_counts")
            if index < histograms:
                entry["histogram"] = histogram(bins, counts)
        judged = [f for f in features if f["status"] != "collecting"]
        report["current_rows"] = max((f["current_rows"] for f in features), default=0)
        report["features"] = features
        report["moved"] = [f["feature"] for f in features if f["status"] in ("warning", "drift")]
        if not judged:
            report["status"] = "collecting"
        else:
            report["status"] = max(judged, key=lambda f: SEVERITY[f["status"]])["status"]
        return report


def histogram(bins: FeatureBins, counts: np.ndarray) -> dict:
    """Shares of the reference and the current window per fine bin, with the bins' edges
    (the outer bins are open: their outer edge is the reference's min / max)."""
    reference = bins.reference / max(int(bins.reference.sum()), 1)
    current = counts / max(int(counts.sum()), 1)
    return {
        "edges": [float(e) for e in bins.edges],
        "reference": [round(float(v), 5) for v in reference],
        "current": [round(float(v), 5) for v in current],
    }
