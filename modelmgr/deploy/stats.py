"""Usage statistics from the worker's per-minute UsageBucket rows (and their all-time sums,
UsageTotal, one row per version and slot).

Rows hold counts, sums, min/max and a latency histogram over LATENCY_BUCKETS_MS (plus
an overflow bucket) of the successful requests; histograms add up, so percentiles of
any period and any grouping come from summed histograms (inference.stats writes them:
bucket i holds latencies in (bound[i-1], bound[i]]).

Language models' rows add token counts and two more histograms that add up the same
way: time to first token (ms, over LATENCY_BUCKETS_MS) and decode speed (tokens/s, over
TOKENS_PER_S_BUCKETS), so their p50/p95 over any period come from summed histograms too.
"""

from __future__ import annotations

import functools
import operator
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate, groupby
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from modelmgr.models import (
    LATENCY_BUCKETS_MS,
    TOKENS_PER_S_BUCKETS,
    USAGE_FIGURES,
    ModelVersion,
    UsageBucket,
    UsageTotal,
)
from modelmgr.registry.validation import InvalidInput

DEFAULT_WINDOW = timedelta(hours=24)
HISTOGRAM_SIZE = len(LATENCY_BUCKETS_MS) + 1
TPS_HISTOGRAM_SIZE = len(TOKENS_PER_S_BUCKETS) + 1
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def histogram_percentile(
    histogram: list[int],
    q: float,
    *,
    low: float | None = None,
    high: float | None = None,
    bounds: tuple[float, ...] = LATENCY_BUCKETS_MS,
) -> float | None:
    """The q-th percentile (0-100) of a summed histogram over ``bounds``, interpolated
    inside its bucket and clamped to the observed [low, high]."""
    # Running sums and a binary search, both in C: a version's plot takes two
    # percentiles of each of its 1,440 minutes a day.
    running = list(accumulate(histogram))
    total = running[-1] if running else 0
    if total <= 0:
        return None
    rank = q / 100 * total
    # The first bucket whose running sum reaches the rank (the first non-empty one for
    # rank 0): every bucket before it holds fewer samples than the rank.
    index = bisect_left(running, rank) if rank > 0 else bisect_right(running, 0)
    if index >= len(running):
        return high
    seen = running[index - 1] if index > 0 else 0
    n = running[index] - seen
    lower = bounds[index - 1] if index > 0 else 0.0
    if index < len(bounds):
        upper = bounds[index]
    else:
        upper = high if high is not None else lower
    value = lower + (upper - lower) * ((rank - seen) / n)
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return round(value, 4)


@dataclass(frozen=True)
class Histogram:
    """Where a usage row (or a Tally) keeps one histogram and its observed extremes."""

    field: str
    low: str
    high: str
    bounds: tuple[float, ...] = LATENCY_BUCKETS_MS
    digits: int = 4

    def percentile(self, figures: dict[str, Any], q: float) -> float | None:
        """The q-th percentile of ``figures`` (a row's fields, or ``vars(tally)``); a
        stored histogram longer than the bounds is cut to them, as Tally.add cuts it."""
        value = histogram_percentile(
            (figures.get(self.field) or [])[: len(self.bounds) + 1],
            q,
            low=figures.get(self.low),
            high=figures.get(self.high),
            bounds=self.bounds,
        )
        return None if value is None else round(value, self.digits)


LATENCY = Histogram("histogram", "min_ms", "max_ms")
TTFT = Histogram("ttft_histogram", "ttft_min_ms", "ttft_max_ms")
# Decode speed: p95 is the fast end.
SPEED = Histogram("tps_histogram", "tps_min", "tps_max", TOKENS_PER_S_BUCKETS, digits=2)


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
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_total_ms: float = 0.0
    ttft_min_ms: float | None = None
    ttft_max_ms: float | None = None
    ttft_histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)
    tps_min: float | None = None
    tps_max: float | None = None
    tps_histogram: list[int] = field(default_factory=lambda: [0] * TPS_HISTOGRAM_SIZE)

    def add(self, row: dict[str, Any]) -> None:
        self.count += row["count"]
        self.errors += row["errors"]
        self.refused += row["refused"]
        self.total_ms += row["total_ms"] or 0.0
        self.prompt_tokens += row.get("prompt_tokens") or 0
        self.completion_tokens += row.get("completion_tokens") or 0
        self.ttft_total_ms += row.get("ttft_total_ms") or 0.0
        for key, pick in _EXTREMES:
            value, mine = row.get(key), getattr(self, key)
            if value is not None:
                setattr(self, key, value if mine is None else pick(mine, value))
        for key in ("histogram", "ttft_histogram", "tps_histogram"):
            values = row.get(key)
            if values:  # element-wise, in C: a page adds up 1,440 of these a day
                mine = getattr(self, key)
                size = min(len(mine), len(values))
                mine[:size] = map(operator.add, mine[:size], map(int, values[:size]))
        last_used = row.get("last_used")
        if last_used is not None and (self.last_used is None or last_used > self.last_used):
            self.last_used = last_used

    def summary(self) -> dict[str, Any]:
        ok = self.count - self.errors - self.refused
        figures = vars(self)
        return {
            "count": self.count,
            "errors": self.errors,
            "refused": self.refused,
            "error_rate": round(self.errors / self.count, 6) if self.count else 0.0,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "mean_ms": round(self.total_ms / ok, 4) if ok > 0 else None,
            "p50_ms": LATENCY.percentile(figures, 50),
            "p95_ms": LATENCY.percentile(figures, 95),
            "p99_ms": LATENCY.percentile(figures, 99),
            "last_used": self.last_used,
            **self.llm_summary(),
        }

    def llm_summary(self) -> dict[str, Any]:
        """Success rate, tokens, time to first token and tokens/s (None without samples)."""
        generations = sum(self.ttft_histogram)
        figures = vars(self)
        return {
            "success_rate": round(1 - self.errors / self.count, 6) if self.count else None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "generations": generations,
            "ttft_mean_ms": round(self.ttft_total_ms / generations, 4) if generations else None,
            "ttft_p50_ms": TTFT.percentile(figures, 50),
            "ttft_p95_ms": TTFT.percentile(figures, 95),
            "tokens_per_s_p50": SPEED.percentile(figures, 50),
            "tokens_per_s_p95": SPEED.percentile(figures, 95),
        }


_EXTREMES = (
    ("min_ms", min),
    ("max_ms", max),
    ("ttft_min_ms", min),
    ("ttft_max_ms", max),
    ("tps_min", min),
    ("tps_max", max),
)


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


USAGE_FIELDS = ("slot_name", "version_id", "minute", *USAGE_FIGURES)
# A UsageTotal row: a bucket's figures without its minute.
TOTAL_FIELDS = tuple(name for name in USAGE_FIELDS if name != "minute")
# A minute of a version's plot, of a model that generates no tokens.
PLOT_FIELDS = ("minute", "count", "errors", "refused", "total_ms", "min_ms", "max_ms", "histogram")
SERIES_KEYS = (
    "count",
    "errors",
    "refused",
    "mean_ms",
    "p50_ms",
    "p95_ms",
    "prompt_tokens",
    "completion_tokens",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "tokens_per_s_p50",
    "tokens_per_s_p95",
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
    return rows.order_by("minute").values(*USAGE_FIELDS)


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
        series.append({key: summary[key] for key in SERIES_KEYS} | {"minute": minute})
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
    first row is the x axis in epoch seconds. ``llm``: the version generated tokens (its
    page shows the language-model figures and plots).
    """
    totals: dict[str, Tally] = {}
    # All time: one row per slot (UsageTotal), not every minute the version served.
    for row in UsageTotal.objects.filter(version=version).values(*TOTAL_FIELDS):
        totals.setdefault(row["slot_name"], Tally()).add(row)
    rows = [{"slot": name, **tally.summary()} for name, tally in sorted(totals.items())]
    llm = version.model.task == "llm" or any(
        r["prompt_tokens"] or r["completion_tokens"] for r in rows
    )
    # The plot reads a row a minute and slot (1,440 a day): a tensor model's rows are
    # read without the columns it does not draw (tokens and their two JSON histograms).
    plotted = LLM_PLOT_COLUMNS if llm else PLOT_COLUMNS
    minutes = [
        (minute, _minute_figures(list(minute_rows)))
        for minute, minute_rows in groupby(
            UsageBucket.objects.filter(version=version, minute__gte=parse_since(since))
            .order_by("minute")
            .values(*(USAGE_FIELDS if llm else PLOT_FIELDS)),
            key=operator.itemgetter("minute"),
        )
    ]
    return {
        "totals": rows,
        "llm": llm,
        "plot": {
            "labels": ["time", *(label for label, _ in plotted)],
            "data": [
                [int(minute.timestamp()) for minute, _ in minutes],
                *([figure(figures) for _, figures in minutes] for _, figure in plotted),
            ],
        },
    }


def _minute_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A minute's fields: its row when one slot served it, else the slots' rows added up."""
    if len(rows) == 1:
        return rows[0]
    tally = Tally()
    for row in rows:
        tally.add(row)
    return vars(tally)


# What a version's plot draws of each minute: (column label, figure of the minute's
# fields). Two percentiles, not the summary's three, and token figures only for a
# language model.
PLOT_COLUMNS = (
    ("requests", operator.itemgetter("count")),
    ("errors", operator.itemgetter("errors")),
    ("refused", operator.itemgetter("refused")),
    ("p50 ms", functools.partial(LATENCY.percentile, q=50)),
    ("p95 ms", functools.partial(LATENCY.percentile, q=95)),
)
LLM_PLOT_COLUMNS = (
    *PLOT_COLUMNS,
    ("prompt tokens", operator.itemgetter("prompt_tokens")),
    ("generated tokens", operator.itemgetter("completion_tokens")),
    ("ttft p50 ms", functools.partial(TTFT.percentile, q=50)),
    ("ttft p95 ms", functools.partial(TTFT.percentile, q=95)),
    ("tokens/s p50", functools.partial(SPEED.percentile, q=50)),
    ("tokens/s p95", functools.partial(SPEED.percentile, q=95)),
)
