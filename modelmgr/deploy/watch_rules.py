"""A health watch's thresholds (parsed from callers' input) and its verdict on figures.

Pure functions: the figures come from modelmgr.deploy.watch_measure, the decisions are
taken here, and modelmgr.deploy.watch acts on them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from modelmgr.registry.validation import InvalidInput

MAX_WINDOW_S = 3600.0
DEFAULT_MIN_REQUESTS = 20
FIELDS = ("window_s", "max_error_rate", "max_p95_ratio", "min_requests")
EXAMPLE = '{"window_s": 30, "max_error_rate": 0.05, "max_p95_ratio": 1.5, "min_requests": 20}'


@dataclass(frozen=True)
class Thresholds:
    window_s: float
    max_error_rate: float | None = None
    max_p95_ratio: float | None = None
    min_requests: int = DEFAULT_MIN_REQUESTS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(raw: dict, key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    # bool is an int to Python; true is no window length.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"watch.{key} must be a number, got {value!r}")
    return float(value)


def thresholds_parse(raw: Any) -> Thresholds:
    """The ``watch`` object of a switch, checked whole (422 naming the field): nothing
    starts on a half-valid watch."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"watch must be an object like {EXAMPLE}, got {raw!r}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown watch field(s): {', '.join(unknown)} (allowed: {', '.join(FIELDS)})"
        )
    window = _number(raw, "window_s")
    if window is None:
        raise InvalidInput(f"watch.window_s is required (seconds to watch), e.g. {EXAMPLE}")
    if not 1 <= window <= MAX_WINDOW_S:
        raise InvalidInput(f"watch.window_s must be 1 to {MAX_WINDOW_S:.0f} seconds, got {window}")
    error_rate = _number(raw, "max_error_rate")
    if error_rate is not None and not 0 <= error_rate < 1:
        raise InvalidInput(
            f"watch.max_error_rate is a fraction of requests, 0 to below 1, got {error_rate}"
        )
    ratio = _number(raw, "max_p95_ratio")
    if ratio is not None and ratio < 1:
        raise InvalidInput(
            f"watch.max_p95_ratio compares the new p95 with the previous one and must be "
            f"at least 1 (1.5: up to 50% slower), got {ratio}"
        )
    if error_rate is None and ratio is None:
        raise InvalidInput("a watch needs max_error_rate, max_p95_ratio or both")
    minimum = raw.get("min_requests", DEFAULT_MIN_REQUESTS)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise InvalidInput(f"watch.min_requests must be a whole number >= 1, got {minimum!r}")
    return Thresholds(window, error_rate, ratio, minimum)


@dataclass(frozen=True)
class Verdict:
    regressed: bool
    reason: str


def judge(thresholds: Thresholds, figures: dict[str, Any], baseline: dict[str, Any]) -> Verdict:
    """Regressed or not, with the figures that decided it in words.

    Nothing is judged below ``min_requests``: a few unlucky requests are no regression.
    The p95 ratio needs a baseline (the previous version served requests before the
    switch) and ``min_requests`` successful requests of the new version.
    """
    count, errors = figures["count"], figures["errors"]
    over = f"over {count} requests in {figures['elapsed_s']:.1f} s"
    if count < thresholds.min_requests:
        return Verdict(
            False,
            f"only {count} requests in {figures['elapsed_s']:.1f} s "
            f"(min_requests {thresholds.min_requests}): not judged",
        )
    rate = figures["error_rate"]
    if thresholds.max_error_rate is not None and rate > thresholds.max_error_rate:
        return Verdict(
            True,
            f"error rate {rate:.2f} > {thresholds.max_error_rate:g} ({errors} failed) {over}",
        )
    p95, before = figures.get("p95_ms"), baseline.get("p95_ms")
    ok = count - errors - figures.get("refused", 0)
    if (
        thresholds.max_p95_ratio is not None
        and p95 is not None
        and before
        and ok >= thresholds.min_requests
    ):
        ratio = p95 / before
        if ratio > thresholds.max_p95_ratio:
            return Verdict(
                True,
                f"p95 {p95:.1f} ms is {ratio:.2f}x the previous version's {before:.1f} ms "
                f"(> {thresholds.max_p95_ratio:g}x) {over}",
            )
    parts = [f"error rate {rate:.2f}"]
    if thresholds.max_error_rate is not None:
        parts[0] += f" <= {thresholds.max_error_rate:g}"
    if thresholds.max_p95_ratio is not None:
        if p95 is not None and before:
            parts.append(f"p95 {p95:.1f} ms vs {before:.1f} ms before ({p95 / before:.2f}x)")
        else:
            parts.append("p95 not compared (no baseline from the previous version)")
    return Verdict(False, ", ".join(parts) + f" {over}")
