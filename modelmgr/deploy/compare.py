"""Two versions side by side (seed 001's model comparison): what differs and by how much.

One service for ``GET /api/v1/compare?a=&b=`` and the ``/models/compare`` page. Deltas
are ``b - a`` (b is the candidate, a the baseline), with the ratio ``b / a`` where
that reads better (size, latency, throughput). Figures that one side lacks are shown
with a null delta, never guessed.
"""

from __future__ import annotations

from typing import Any

from modelmgr.deploy.contract import effective_signature
from modelmgr.deploy.profile import profile_as_dict, profile_latest
from modelmgr.deploy.sigdiff import signature_diff
from modelmgr.models import ModelVersion, UsageTotal
from modelmgr.registry import selectors
from modelmgr.registry.memory_estimate import estimate_memory

METADATA_FIELDS = (
    "task",
    "framework",
    "status",
    "family",
    "parameter_size",
    "purpose",
    "quantization",
    "min_vram_mb",
    "production_ready",
    "python_version",
    "source_uri",
    "created_at",
)
METRIC_FIELDS = ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss")
PROFILE_FIGURES = ("p50_ms", "p95_ms", "p99_ms", "throughput_per_s")
STATS_FIGURES = ("count", "error_rate", "mean_ms", "p50_ms", "p95_ms", "p99_ms")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pair(a: Any, b: Any) -> dict[str, Any]:
    """``{"a", "b", "delta", "ratio"}``: delta and ratio when both are numbers."""
    both = _number(a) and _number(b)
    return {
        "a": a,
        "b": b,
        "delta": round(b - a, 6) if both else None,
        "ratio": round(b / a, 4) if both and a else None,
    }


def _field(version: ModelVersion, name: str) -> Any:
    if name == "task":
        return version.model.task
    value = getattr(version, name)
    return value.isoformat() if hasattr(value, "isoformat") else value


def _metrics(version: ModelVersion) -> dict[str, float]:
    found = {name: getattr(version, name) for name in METRIC_FIELDS}
    extra = (version.metadata or {}).get("metrics") or {}
    if isinstance(extra, dict):
        found.update({k: v for k, v in extra.items() if _number(v) and k not in found})
    return {k: v for k, v in found.items() if v is not None}


def usage_summary(version: ModelVersion) -> dict[str, Any] | None:
    """All-time serving figures of a version over every slot (the worker's usage rows)."""
    from modelmgr.deploy.stats import TOTAL_FIELDS, Tally

    tally = Tally()
    rows = 0
    for row in UsageTotal.objects.filter(version=version).values(*TOTAL_FIELDS):
        tally.add(row)
        rows += 1
    return tally.summary() if rows else None


def _profiles(a: ModelVersion, b: ModelVersion) -> dict[str, Any]:
    pa, pb = profile_latest(a), profile_latest(b)
    sizes = sorted(
        {r["batch_size"] for p in (pa, pb) if p for r in p.results},
    )
    rows = []
    for size in sizes:
        ra = (pa.at_batch(size) if pa else None) or {}
        rb = (pb.at_batch(size) if pb else None) or {}
        rows.append(
            {"batch_size": size, **{f: _pair(ra.get(f), rb.get(f)) for f in PROFILE_FIGURES}}
        )
    notes = []
    if pa is None or pb is None:
        missing = [v.ref for v, p in ((a, pa), (b, pb)) if p is None]
        notes.append("not profiled yet: " + ", ".join(missing))
    elif pa.device != pb.device:
        notes.append(
            f"profiled on different devices ({pa.device} vs {pb.device}): latencies are "
            "not directly comparable"
        )
    return {
        "a": profile_as_dict(pa) if pa else None,
        "b": profile_as_dict(pb) if pb else None,
        "by_batch": rows,
        "memory_bytes": _pair(pa.memory_bytes if pa else None, pb.memory_bytes if pb else None),
        "measured_bytes": _pair(
            pa.measured_bytes if pa else None, pb.measured_bytes if pb else None
        ),
        "load_ms": _pair(pa.load_ms if pa else None, pb.load_ms if pb else None),
        "notes": notes,
    }


def compare_versions(*, user, a: str, b: str) -> dict[str, Any]:
    """Resolve both refs (404/403 as any read), then every figure side by side."""
    va = selectors.version_resolve(user=user, ref=a)
    vb = selectors.version_resolve(user=user, ref=b)
    changes = signature_diff(effective_signature(va), effective_signature(vb))
    metrics_a, metrics_b = _metrics(va), _metrics(vb)
    usage_a, usage_b = usage_summary(va), usage_summary(vb)
    return {
        "a": va.ref,
        "b": vb.ref,
        "same_version": va.pk == vb.pk,
        "metadata": [
            {"field": name, "a": _field(va, name), "b": _field(vb, name)}
            | {"same": _field(va, name) == _field(vb, name)}
            for name in METADATA_FIELDS
        ],
        "metrics": [
            {"metric": name, **_pair(metrics_a.get(name), metrics_b.get(name))}
            for name in sorted(set(metrics_a) | set(metrics_b))
        ],
        "signature": {
            "changes": [change.as_dict() for change in changes],
            "breaking": any(change.breaking for change in changes),
            "same": not changes,
        },
        "size": {
            "size_bytes": _pair(va.size_bytes, vb.size_bytes),
            "parameter_count": _pair(va.parameter_count, vb.parameter_count),
            "estimate_bytes": _pair(
                estimate_memory(va).total_bytes, estimate_memory(vb).total_bytes
            ),
        },
        "profile": _profiles(va, vb),
        "stats": {
            "a": usage_a,
            "b": usage_b,
            "figures": {
                f: _pair((usage_a or {}).get(f), (usage_b or {}).get(f)) for f in STATS_FIGURES
            },
        },
    }
