"""A health watch's figures, from the UsageBucket rows every worker flushes.

Reading the database, not one worker's memory, makes the figures the sum over every
worker serving the slot, and lets any web process measure a watch. Rows are per
minute, so a watch remembers what its version had already counted in the slot from the
minute of the switch on (``offset``) and subtracts it: counts and histograms add up,
so they subtract too. What a worker has not flushed yet is counted at its next flush
(MODELMGR_STATS_FLUSH_S), which is why a window's verdict waits that long past its end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from modelmgr.deploy.stats import USAGE_FIELDS, Tally, histogram_percentile
from modelmgr.models import UsageBucket


def _tally(*, slot: str, version_id: int, since: datetime) -> Tally:
    tally = Tally()
    rows = UsageBucket.objects.filter(
        slot_name=slot, version_id=version_id, minute__gte=since.replace(second=0, microsecond=0)
    ).values(*USAGE_FIELDS)
    for row in rows:
        tally.add(row)
    return tally


def usage_offsets(*, slot: str, at: datetime) -> dict[int, dict[str, Any]]:
    """Per version, what it counted in ``slot`` from the minute of ``at`` on: taken
    before a switch, and subtracted from the watch's every measure."""
    tallies: dict[int, Tally] = {}
    rows = UsageBucket.objects.filter(
        slot_name=slot, minute__gte=at.replace(second=0, microsecond=0)
    ).values(*USAGE_FIELDS)
    for row in rows:
        tallies.setdefault(row["version_id"], Tally()).add(row)
    return {version_id: _offset(tally, at) for version_id, tally in tallies.items()}


def usage_offset(*, slot: str, version_id: int, at: datetime) -> dict[str, Any]:
    """``usage_offsets`` of one version."""
    return _offset(_tally(slot=slot, version_id=version_id, since=at), at)


def _offset(tally: Tally, at: datetime) -> dict[str, Any]:
    return {
        "since": at.isoformat(),
        "count": tally.count,
        "errors": tally.errors,
        "refused": tally.refused,
        "histogram": list(tally.histogram),
    }


def baseline_measure(*, slot: str, version_id: int | None) -> dict[str, Any]:
    """The previous version's figures over MODELMGR_WATCH_BASELINE_S before the switch:
    its p95 is what the new version's p95 is compared with (None without requests)."""
    window_s = float(getattr(settings, "MODELMGR_WATCH_BASELINE_S", 900.0))
    if version_id is None:
        return {"count": 0, "p95_ms": None, "window_s": window_s}
    since = timezone.now() - timedelta(seconds=window_s)
    summary = _tally(slot=slot, version_id=version_id, since=since).summary()
    return {
        "count": summary["count"],
        "errors": summary["errors"],
        "error_rate": summary["error_rate"],
        "p95_ms": summary["p95_ms"],
        "window_s": window_s,
    }


def window_figures(
    *, slot: str, version_id: int, started: datetime, offset: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The new version's requests since the switch: counts, error rate, p95.

    Rows are read from the minute the offset was taken in (``offset["since"]``, before
    the switch), so what is subtracted and what it is subtracted from match.
    """
    since = parse_datetime(offset["since"]) if offset.get("since") else started
    tally = _tally(slot=slot, version_id=version_id, since=since)
    count = max(tally.count - offset.get("count", 0), 0)
    errors = max(tally.errors - offset.get("errors", 0), 0)
    refused = max(tally.refused - offset.get("refused", 0), 0)
    before = offset.get("histogram") or []
    histogram = [
        max(n - (before[i] if i < len(before) else 0), 0) for i, n in enumerate(tally.histogram)
    ]
    # The rows' min/max may include requests before the switch: good enough as clamps
    # of the interpolation inside a bucket, never the figure itself.
    p95 = histogram_percentile(histogram, 95, low=tally.min_ms, high=tally.max_ms)
    return {
        "count": count,
        "errors": errors,
        "refused": refused,
        "error_rate": round(errors / count, 6) if count else 0.0,
        "p95_ms": p95,
        "elapsed_s": round((now - started).total_seconds(), 3),
    }
