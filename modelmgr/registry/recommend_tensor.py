"""Ranking tensor-model versions (detector, classifier, ...) for a priority.

Language models rank by purpose, size and measured tokens/s (modelmgr.registry.recommend);
a tensor model has better evidence: its recorded accuracy, the latency and throughput
of its stored profile (modelmgr.deploy.profile), else its measured serving latency. Per
priority the two weigh differently (``WEIGHTS``): speed favours the fastest, quality
the most accurate, balanced both alike. Each figure counts relative to the candidates
that fit (1 for the best of them), so the units never matter; every figure used, or
missing, is stated in the reasons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmgr.models import Purpose, VersionProfile

if TYPE_CHECKING:
    from modelmgr.registry.recommend import Recommendation

# priority -> (latency weight, accuracy weight, smaller-memory weight)
WEIGHTS = {
    Purpose.SPEED: (3.0, 1.0, 0.5),
    Purpose.BALANCED: (2.0, 2.0, 0.25),
    Purpose.QUALITY: (0.5, 3.0, 0.0),
}
PURPOSE_BONUS = 1.0  # a declared intent counts less than measured figures
ACCURACY_KEYS = ("val_accuracy", "test_accuracy", "accuracy", "mAP", "map", "map50")
MIN_REQUESTS = 10


def accuracy_of(version) -> tuple[str, float] | None:
    """The version's accuracy figure: val, else test, else one in metadata["metrics"]."""
    for name in ("val_accuracy", "test_accuracy"):
        value = getattr(version, name)
        if value is not None:
            return name, float(value)
    metrics = (version.metadata or {}).get("metrics") or {}
    if isinstance(metrics, dict):
        for name in ACCURACY_KEYS:
            value = metrics.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return name, float(value)
    return None


def latest_profiles(version_ids: list[int]) -> dict[int, VersionProfile]:
    found: dict[int, VersionProfile] = {}
    for profile in VersionProfile.objects.filter(version_id__in=version_ids).order_by(
        "version_id", "-created_at", "-id"
    ):
        found.setdefault(profile.version_id, profile)
    return found


def _latency(item: Recommendation, profile: VersionProfile | None) -> tuple[float, str] | None:
    """(ms, where it comes from): the profile's p50 at its smallest batch, else the
    measured mean latency when there were enough requests."""
    if profile is not None and profile.results:
        row = min(profile.results, key=lambda r: r["batch_size"])
        best = max((r.get("throughput_per_s") or 0) for r in profile.results)
        item.latency_ms, item.throughput_per_s = row["p50_ms"], best or None
        return row["p50_ms"], (
            f"profiled on {profile.device}: {row['p50_ms']:.3g} ms p50 at batch "
            f"{row['batch_size']}, up to {best:.0f} inferences/s"
        )
    if item.requests >= MIN_REQUESTS and item.mean_ms:
        item.latency_ms = item.mean_ms
        return item.mean_ms, f"measured serving latency {item.mean_ms:.3g} ms mean"
    return None


def score_tensor(items: list[Recommendation], priority: str) -> None:
    """Add each candidate's score and reasons for accuracy, speed, memory and purpose."""
    w_speed, w_accuracy, w_memory = WEIGHTS.get(priority, WEIGHTS[Purpose.BALANCED])
    profiles = latest_profiles([i.version.pk for i in items])
    latencies = {id(i): _latency(i, profiles.get(i.version.pk)) for i in items}
    accuracies = {id(i): accuracy_of(i.version) for i in items}
    # The scale is set by the candidates one could run (those that fit), so a better
    # one that does not fit does not lower the shares of those that do.
    scale = [i for i in items if i.fits] or items
    known_ms = [v[0] for i in scale if (v := latencies[id(i)]) and v[0] > 0] or [
        v[0] for v in latencies.values() if v and v[0] > 0
    ]
    known_acc = [v[1] for i in scale if (v := accuracies[id(i)])] or [
        v[1] for v in accuracies.values() if v
    ]
    sizes = [i.estimate_bytes for i in scale if i.estimate_bytes > 0]
    for item in items:
        accuracy = accuracies[id(item)]
        if accuracy is None:
            item.reasons.append("no accuracy recorded (val_accuracy, test_accuracy, metrics)")
        else:
            name, value = accuracy
            item.accuracy = value
            low, high = min(known_acc), max(known_acc)
            share = min((value - low) / (high - low), 1.0) if high > low else 1.0
            item.score += w_accuracy * max(share, 0.0)
            best = " (the best)" if value >= high and len(known_acc) > 1 else ""
            item.reasons.append(f"accuracy: {name} {value:.3g}{best}")
        latency = latencies[id(item)]
        if latency is None:
            item.reasons.append("speed unknown: not profiled and too little measured usage")
        elif latency[0] > 0:
            share = min(min(known_ms) / latency[0], 1.0)
            item.score += w_speed * share
            item.reasons.append(f"speed: {latency[1]}; {share:.0%} of the fastest's speed")
        if w_memory and item.estimate_bytes > 0 and len(sizes) > 1:
            item.score += w_memory * min(min(sizes) / item.estimate_bytes, 1.0)
        if item.version.min_vram_mb:
            item.reasons.append(f"declares min VRAM {item.version.min_vram_mb} MB")
        purpose = item.version.purpose
        if purpose == priority:
            item.score += PURPOSE_BONUS
            item.reasons.append(f"purpose {purpose} matches the priority")
        elif purpose:
            item.reasons.append(f"purpose {purpose}, not {priority}")
