"""Usage statistics from the worker's per-minute UsageBucket rows.

Rows hold counts, sums, min/max and a latency histogram over LATENCY_BUCKETS_MS (plus
an overflow bucket) of the successful requests; histograms add up, so percentiles of
any period and any grouping come from summed histograms (inference.stats writes them:
bucket i holds latencies in (bound[i-1], bound[i]]).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from modelmgr.models import LATENCY_BUCKETS_MS, ModelVersion, UsageBucket
from modelmgr.registry.validation import InvalidInput

DEFAULT_WINDOW = timedelta(hours=24)
HISTOGRAM_SIZE = len(LATENCY_BUCKETS_MS) + 1
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def histogram_percentile(
    histogram: list[int], q: float, *, low: float | None = None, high: float | None = None
) -> float | None:
    """The q-th percentile (0-100) of a summed histogram, interpolated inside its bucket
    and clamped to the observed [low, high]."""
    total = sum(histogram)
    if total <= 0:
        return None
    rank = q / 100 * total
    seen = 0
    for index, n in enumerate(histogram):
        if n <= 0:
            continue
        if seen + n >= rank:
            lower = LATENCY_BUCKETS_MS[index - 1] if index > 0 else 0.0
            if index < len(LATENCY_BUCKETS_MS):
                upper = LATENCY_BUCKETS_MS[index]
            else:
                upper = high if high is not None else lower
            value = lower + (upper - lower) * ((rank - seen) / n)
            if low is not None:
                value = max(value, low)
            if high is not None:
                value = min(value, high)
            return round(value, 4)
        seen += n
    return high


@dataclass
class Tally:
    count: int = 0
    errors: int = 0
    refused: int = 0
    total_ms: float = 0.0
    min_ms: float | None = None
    max_ms: float | None = None
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)
    last_used: datetime | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.count += row["count"]
        self.errors += row["errors"]
        self.refused += row["refused"]
        self.total_ms += row["total_ms"] or 0.0
        for key, pick in (("min_ms", min), ("max_ms", max)):
            value, mine = row[key], getattr(self, key)
            if value is not None:
                setattr(self, key, value if mine is None else pick(mine, value))
        for index, n in enumerate((row["histogram"] or [])[:HISTOGRAM_SIZE]):
            self.histogram[index] += int(n)
        if row["last_used"] is not None and (
            self.last_used is None or row["last_used"] > self.last_used
        ):
            self.last_used = row["last_used"]

    def summary(self) -> dict[str, Any]:
        ok = self.count - self.errors - self.refused
        pct = {
            q: histogram_percentile(self.histogram, q, low=self.min_ms, high=self.max_ms)
            for q in (50, 95, 99)
        }
        return {
            "count": self.count,
            "errors": self.errors,
            "refused": self.refused,
            "error_rate": round(self.errors / self.count, 6) if self.count else 0.0,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "mean_ms": round(self.total_ms / ok, 4) if ok > 0 else None,
            "p50_ms": pct[50],
            "p95_ms": pct[95],
            "p99_ms": pct[99],
            "last_used": self.last_used,
        }


def parse_since(value: str | None, *, now: datetime | None = None) -> datetime:
    """``since`` as an ISO 8601 time or a duration back from now (90s, 15m, 24h, 7d, 2w)."""
    now = now or timezone.now()
    if value is None or value == "":
        return now - DEFAULT_WINDOW
    text = value.strip()
    match = _DURATION_RE.match(text)
    if match:
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    parsed = parse_datetime(text)
    if parsed is None:
        raise InvalidInput(
            f"since={value!r} is neither an ISO 8601 time nor a duration like 15m, 24h, 7d"
        )
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


_FIELDS = (
    "slot_name",
    "version_id",
    "minute",
    "count",
    "errors",
    "refused",
    "total_ms",
    "min_ms",
    "max_ms",
    "histogram",
    "last_used",
)


def usage_rows(
    *,
    user,
    slot: str | None = None,
    model: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
):
    """UsageBucket rows (as dicts) of versions ``user`` may see, filtered.

    ``model`` is a name or owner/name; ``version`` a version string (of ``model``) or
    a full ``[owner/]name@version`` reference.
    """
    rows = UsageBucket.objects.filter(version__in=ModelVersion.objects.visible_to(user))
    if slot:
        rows = rows.filter(slot_name=slot)
    if model:
        owner, _, name = model.rpartition("/")
        rows = rows.filter(version__model__name=name)
        if owner:
            rows = rows.filter(version__model__owner__username=owner)
    if version:
        if "@" in version:
            from modelmgr.registry.selectors import version_resolve

            rows = rows.filter(version=version_resolve(user=user, ref=version))
        else:
            rows = rows.filter(version__version=version)
    if since is not None:
        rows = rows.filter(minute__gte=since.replace(second=0, microsecond=0))
    return rows.order_by("minute").values(*_FIELDS)


def stats_aggregate(
    *,
    user,
    slot: str | None = None,
    model: str | None = None,
    version: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """Totals, one group per (slot, version), and a per-minute series for plots.

    1. Read the matching rows (visibility applied) from ``since`` (default: 24 h).
    2. Sum them three ways: all, per (slot, version), per minute.
    3. Summarize each sum: counts, error rate, min/max/mean and percentiles.
    """
    now = timezone.now()
    start = parse_since(since, now=now)
    total = Tally()
    groups: dict[tuple[str, int], Tally] = {}
    minutes: dict[datetime, Tally] = {}
    for row in usage_rows(user=user, slot=slot, model=model, version=version, since=start):
        total.add(row)
        groups.setdefault((row["slot_name"], row["version_id"]), Tally()).add(row)
        minutes.setdefault(row["minute"], Tally()).add(row)
    versions = {
        v.pk: v
        for v in ModelVersion.objects.select_related("model__owner").filter(
            pk__in={version_id for _, version_id in groups}
        )
    }
    group_list = []
    for (slot_name, version_id), tally in sorted(groups.items(), key=lambda kv: kv[0]):
        found = versions.get(version_id)
        group_list.append(
            {
                "slot": slot_name,
                "version_id": version_id,
                "ref": found.ref if found else None,
                "owner": found.model.owner.get_username() if found else None,
                **tally.summary(),
            }
        )
    series = []
    for minute, tally in sorted(minutes.items()):
        summary = tally.summary()
        series.append(
            {
                key: summary[key]
                for key in ("count", "errors", "refused", "mean_ms", "p50_ms", "p95_ms")
            }
            | {"minute": minute}
        )
    return {
        "since": start,
        "until": now,
        "totals": total.summary(),
        "groups": group_list,
        "series": series,
    }


def stats_for_version(*, version: ModelVersion, since: str | None = None) -> dict[str, Any]:
    """A version's page: totals per slot (all time) and a uPlot series (default 24 h).

    ``plot`` is uPlot's data layout: ``labels`` name the columns of ``data``, whose
    first row is the x axis in epoch seconds.
    """
    totals: dict[str, Tally] = {}
    for row in UsageBucket.objects.filter(version=version).values(*_FIELDS):
        totals.setdefault(row["slot_name"], Tally()).add(row)
    minutes: dict[datetime, Tally] = {}
    for row in (
        UsageBucket.objects.filter(version=version, minute__gte=parse_since(since))
        .order_by("minute")
        .values(*_FIELDS)
    ):
        minutes.setdefault(row["minute"], Tally()).add(row)
    ordered = sorted(minutes.items())
    summaries = [tally.summary() for _, tally in ordered]
    return {
        "totals": [{"slot": name, **tally.summary()} for name, tally in sorted(totals.items())],
        "plot": {
            "labels": ["time", "requests", "errors", "refused", "p50 ms", "p95 ms"],
            "data": [
                [int(minute.timestamp()) for minute, _ in ordered],
                [s["count"] for s in summaries],
                [s["errors"] for s in summaries],
                [s["refused"] for s in summaries],
                [s["p50_ms"] for s in summaries],
                [s["p95_ms"] for s in summaries],
            ],
        },
    }
