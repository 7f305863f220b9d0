"""Usage statistics: summed histograms over LATENCY_BUCKETS_MS, real UsageBucket rows."""

from __future__ import annotations

from bisect import bisect_left
from datetime import timedelta

import pytest
from django.utils import timezone

from modelmgr.deploy.stats import (
    histogram_percentile,
    parse_since,
    stats_aggregate,
    stats_for_version,
)
from modelmgr.models import LATENCY_BUCKETS_MS
from modelmgr.registry.validation import InvalidInput
from tests.deploy.support import bucket_row, llm_bucket_row, version_of

SIZE = len(LATENCY_BUCKETS_MS) + 1


def test_percentile_of_one_sample_is_that_sample():
    histogram = [0] * SIZE
    histogram[bisect_left(LATENCY_BUCKETS_MS, 3.0)] = 1
    assert histogram_percentile(histogram, 50, low=3.0, high=3.0) == 3.0


def test_percentiles_fall_in_the_right_bucket():
    histogram = [0] * SIZE
    latencies = [1.0] * 90 + [100.0] * 10
    for ms in latencies:
        histogram[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
    p50 = histogram_percentile(histogram, 50, low=1.0, high=100.0)
    p95 = histogram_percentile(histogram, 95, low=1.0, high=100.0)
    # Within one bucket (25% wide) of the truth.
    assert 1.0 / 1.25 <= p50 <= 1.0
    assert 100.0 / 1.25 <= p95 <= 100.0


def test_percentile_of_an_empty_histogram_is_none():
    assert histogram_percentile([0] * SIZE, 50) is None


def test_overflow_bucket_stays_within_the_observed_range():
    histogram = [0] * SIZE
    histogram[-1] = 2
    value = histogram_percentile(histogram, 99, low=10**6, high=2 * 10**6)
    assert 10**6 <= value <= 2 * 10**6


def test_since_takes_durations_and_iso_times():
    now = timezone.now()
    assert parse_since("15m", now=now) == now - timedelta(minutes=15)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since(None, now=now) == now - timedelta(hours=24)
    assert parse_since("2026-01-02T03:04:05+00:00").year == 2026


def test_malformed_since_is_a_422_naming_it():
    with pytest.raises(InvalidInput) as caught:
        parse_since("yesterday")
    assert "since='yesterday'" in caught.value.detail


@pytest.mark.django_db
def test_rows_add_up_across_minutes_slots_and_versions(owner):
    v1, v2 = version_of(owner, version="1"), version_of(owner, version="2")
    now = timezone.now()
    bucket_row(v1, "clf", now - timedelta(minutes=2), [1.0, 2.0, 3.0], errors=1)
    bucket_row(v1, "clf", now - timedelta(minutes=1), [4.0])
    bucket_row(v2, "clf", now - timedelta(minutes=1), [10.0, 20.0])
    bucket_row(v1, "other", now, [5.0])

    stats = stats_aggregate(user=owner)
    totals = stats["totals"]
    assert (totals["count"], totals["errors"]) == (8, 1)
    assert totals["min_ms"] == 1.0 and totals["max_ms"] == 20.0
    assert totals["mean_ms"] == pytest.approx(45.0 / 7, abs=1e-3)  # errors have no latency
    assert totals["error_rate"] == pytest.approx(1 / 8)
    assert totals["last_used"] is not None
    groups = {(g["slot"], g["ref"]): g for g in stats["groups"]}
    assert set(groups) == {("clf", "clf@1"), ("clf", "clf@2"), ("other", "clf@1")}
    assert groups[("clf", "clf@1")]["count"] == 5
    assert groups[("clf", "clf@1")]["mean_ms"] == pytest.approx(2.5)
    assert [m["count"] for m in stats["series"]] == [4, 3, 1]
    assert stats["series"][0]["minute"] < stats["series"][-1]["minute"]


@pytest.mark.django_db
def test_filters_by_slot_model_version_and_since(owner):
    v1, v2 = version_of(owner, version="1"), version_of(owner, version="2")
    other = version_of(owner, name="det", task="detector")
    now = timezone.now()
    bucket_row(v1, "clf", now - timedelta(hours=3), [1.0])
    bucket_row(v2, "clf", now, [2.0, 2.0])
    bucket_row(other, "det", now, [3.0])

    assert stats_aggregate(user=owner, slot="det")["totals"]["count"] == 1
    assert stats_aggregate(user=owner, model="clf")["totals"]["count"] == 3
    assert stats_aggregate(user=owner, model="olivia/clf")["totals"]["count"] == 3
    assert stats_aggregate(user=owner, model="clf", version="2")["totals"]["count"] == 2
    assert stats_aggregate(user=owner, version="clf@1")["totals"]["count"] == 1
    assert stats_aggregate(user=owner, since="1h")["totals"]["count"] == 3


@pytest.mark.django_db
def test_other_users_usage_is_not_shown(owner, other_user, staff):
    bucket_row(version_of(other_user, name="secret"), "clf", timezone.now(), [1.0])
    assert stats_aggregate(user=owner)["totals"]["count"] == 0
    assert stats_aggregate(user=staff)["totals"]["count"] == 1


@pytest.mark.django_db
def test_no_usage_gives_zero_counts_and_no_latency(owner):
    stats = stats_aggregate(user=owner)
    assert stats["totals"]["count"] == 0
    assert stats["totals"]["p50_ms"] is None and stats["totals"]["mean_ms"] is None
    assert stats["groups"] == [] and stats["series"] == []


@pytest.mark.django_db
def test_version_page_gets_totals_per_slot_and_a_plot(owner):
    version = version_of(owner)
    now = timezone.now()
    bucket_row(version, "a", now - timedelta(days=3), [1.0])
    bucket_row(version, "a", now, [2.0], errors=1)
    bucket_row(version, "b", now, [3.0])
    usage = stats_for_version(version=version)
    assert [(t["slot"], t["count"]) for t in usage["totals"]] == [("a", 3), ("b", 1)]
    plot = usage["plot"]
    assert plot["labels"][0] == "time"
    assert len(plot["data"]) == len(plot["labels"])
    assert plot["data"][1] == [3]  # one recent minute: 2 + 1 requests (the old row is older)


@pytest.mark.django_db
def test_the_plot_draws_each_minutes_percentiles_of_one_slot_or_of_several_added_up(owner):
    """A minute served in one slot is read off its row; a minute served in two is the
    sum of both: its p95 sees the other slot's slow requests."""
    version = version_of(owner)
    now = timezone.now().replace(second=30)
    bucket_row(version, "a", now - timedelta(minutes=1), [2.0] * 10)
    bucket_row(version, "a", now, [2.0] * 10)
    bucket_row(version, "b", now, [900.0] * 10)
    plot = stats_for_version(version=version)["plot"]
    assert plot["labels"] == ["time", "requests", "errors", "refused", "p50 ms", "p95 ms"]
    columns = dict(zip(plot["labels"], plot["data"], strict=True))
    assert columns["requests"] == [10, 20]
    assert columns["time"][1] - columns["time"][0] == 60
    one, both = columns["p95 ms"]
    assert one == 2.0  # clamped to the minute's observed range: every request took 2 ms
    assert 900 / 1.25 <= both <= 900.0
    assert columns["p50 ms"][0] == 2.0 and columns["p50 ms"][1] <= 900.0


@pytest.mark.django_db
def test_a_language_models_plot_draws_tokens_time_to_first_token_and_speed(owner):
    version = version_of(owner, name="chat", task="llm")
    now = timezone.now().replace(second=30)
    llm_bucket_row(
        version, "chat", now, ttfts=[10.0] * 9 + [400.0], rates=[100.0] * 10, completion_tokens=70
    )
    llm_bucket_row(
        version, "chat-b", now, ttfts=[400.0] * 10, rates=[5.0] * 10, completion_tokens=30
    )
    usage = stats_for_version(version=version)
    assert usage["llm"]
    columns = dict(zip(usage["plot"]["labels"], usage["plot"]["data"], strict=True))
    assert columns["generated tokens"] == [100]
    assert 10 / 1.25 <= columns["ttft p50 ms"][0] <= 400.0
    assert 400 / 1.25 <= columns["ttft p95 ms"][0] <= 400.0
    assert columns["tokens/s p50"][0] <= columns["tokens/s p95"][0] <= 100.0


@pytest.mark.django_db
def test_ttft_and_tokens_per_s_percentiles_come_from_histograms_summed_across_minutes(owner):
    """Neither minute alone has the right p50/p95: only the summed histograms do."""
    version = version_of(owner, name="chat", task="llm")
    now = timezone.now()
    # Minute 1: 45 fast first tokens (10 ms) at 100 tokens/s; minute 2: 45 more at
    # 10 ms / 100 tokens/s and 10 slow ones (400 ms) at 5 tokens/s, and 2 errors.
    llm_bucket_row(
        version,
        "chat",
        now - timedelta(minutes=1),
        ttfts=[10.0] * 45,
        rates=[100.0] * 45,
        prompt_tokens=450,
        completion_tokens=900,
    )
    llm_bucket_row(
        version,
        "chat",
        now,
        ttfts=[10.0] * 45 + [400.0] * 10,
        rates=[100.0] * 45 + [5.0] * 10,
        prompt_tokens=550,
        completion_tokens=1100,
        errors=2,
    )
    totals = stats_aggregate(user=owner)["totals"]
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (1000, 2000)
    assert totals["generations"] == 100 and totals["count"] == 102
    assert totals["success_rate"] == pytest.approx(100 / 102, abs=1e-6)
    assert totals["ttft_mean_ms"] == pytest.approx((90 * 10 + 10 * 400) / 100)
    # Within one bucket (25 % wide) of the truth: p50 10 ms / 100 tok/s; the p95 of time
    # to first token is among the slow tenth (400 ms); the p95 of speed is its fast end.
    assert 10 / 1.25 <= totals["ttft_p50_ms"] <= 10.0
    assert 400 / 1.25 <= totals["ttft_p95_ms"] <= 400.0
    assert 100 / 1.25 <= totals["tokens_per_s_p50"] <= 100.0
    assert totals["tokens_per_s_p95"] == pytest.approx(100.0, rel=0.25)
    assert totals["tokens_per_s_p50"] <= totals["tokens_per_s_p95"]
    # Each minute on its own sees only its part.
    first, second = stats_aggregate(user=owner)["series"]
    assert first["ttft_p95_ms"] <= 10.0 and second["ttft_p95_ms"] >= 400 / 1.25
    assert (first["completion_tokens"], second["completion_tokens"]) == (900, 1100)


@pytest.mark.django_db
def test_a_tensor_model_has_no_token_figures(owner):
    bucket_row(version_of(owner), "clf", timezone.now(), [1.0, 2.0])
    totals = stats_aggregate(user=owner)["totals"]
    assert (totals["prompt_tokens"], totals["completion_tokens"], totals["generations"]) == (
        0,
        0,
        0,
    )
    assert totals["ttft_p50_ms"] is None and totals["tokens_per_s_p95"] is None
    assert totals["success_rate"] == 1.0
