"""Health watches without a worker: bad watch inputs are refused before anything
switches, figures come from the usage rows, a dead watcher is reported abandoned, the
p95 comparison with the previous version."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from modelmgr.deploy.watch import watch_start, watch_step, watches_sweep
from modelmgr.deploy.watch_measure import baseline_measure, usage_offset
from modelmgr.deploy.watch_rules import Thresholds, judge
from modelmgr.models import LATENCY_BUCKETS_MS, AuditEvent, Slot, SwitchWatch, UsageBucket
from tests.inference.support import make_slot, registered
from tests.registry.factories import make_version

pytestmark = pytest.mark.django_db

HISTOGRAM = len(LATENCY_BUCKETS_MS) + 1


@pytest.fixture
def served(owner):
    one = make_version(registered(owner, "svc"), "1")
    two = make_version(registered(owner, "svc"), "2")
    make_slot("svc", one, task="classifier")
    return one, two


def usage(version, *, count: int, errors: int = 0, latency_ms: float = 1.0, minute=None):
    """One flushed usage row, as the worker writes it (inference.stats)."""
    histogram = [0] * HISTOGRAM
    index = next(i for i, bound in enumerate(LATENCY_BUCKETS_MS) if latency_ms <= bound)
    histogram[index] = count - errors
    minute = (minute or timezone.now()).replace(second=0, microsecond=0)
    row, _ = UsageBucket.objects.get_or_create(
        version=version, slot_name="svc", minute=minute, defaults={"histogram": [0] * HISTOGRAM}
    )
    # Added to the minute's row, as the worker's flush does (inference.stats).
    row.count += count
    row.errors += errors
    row.total_ms += latency_ms * (count - errors)
    row.min_ms = min(row.min_ms or latency_ms, latency_ms)
    row.max_ms = max(row.max_ms or latency_ms, latency_ms)
    row.histogram = [a + b for a, b in zip(row.histogram, histogram, strict=True)]
    row.last_used = timezone.now()
    row.save()


@pytest.mark.parametrize(
    ("watch", "words"),
    [
        ({}, "watch.window_s is required"),
        ({"window_s": 0, "max_error_rate": 0.1}, "watch.window_s must be 1 to 3600"),
        ({"window_s": True, "max_error_rate": 0.1}, "watch.window_s must be a number"),
        ({"window_s": 30}, "needs max_error_rate, max_p95_ratio or both"),
        ({"window_s": 30, "max_error_rate": 1.5}, "watch.max_error_rate is a fraction"),
        ({"window_s": 30, "max_p95_ratio": 0.5}, "must be at least 1"),
        ({"window_s": 30, "max_error_rate": 0.1, "min_requests": 0}, "min_requests must be"),
        ({"window_s": 30, "max_error_rate": 0.1, "windows": 3}, "unknown watch field(s): windows"),
        ("30s", "watch must be an object"),
    ],
)
def test_bad_watch_is_refused_with_422_naming_it_and_nothing_switches(api, served, watch, words):
    response = api.post(
        "/api/v1/switch",
        {"slots": {"svc": "svc@2"}, "watch": watch},
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    assert words in response.json()["detail"]
    assert Slot.objects.get(name="svc").active_version.version == "1"
    assert not SwitchWatch.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="slot.switch").exists()


def test_watched_switch_of_an_empty_slot_is_refused_it_has_nothing_to_roll_back_to(api, served):
    make_slot("empty")
    response = api.post(
        "/api/v1/switch",
        {"slots": {"empty": "svc@2"}, "watch": {"window_s": 30, "max_error_rate": 0.1}},
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    assert response.json()["slots"] == {"empty": "serves nothing now: nothing to roll back to"}
    assert Slot.objects.get(name="empty").active_version is None


def test_figures_count_only_requests_after_the_switch(served):
    one, two = served
    usage(two, count=7, errors=7)  # svc@2 served (and failed) earlier in this minute
    offset = usage_offset(slot="svc", version_id=two.pk, at=timezone.now())
    Slot.objects.filter(name="svc").update(active_version=two, previous_version=one)
    watch = watch_start(
        slot="svc",
        version=two,
        baseline={},
        thresholds=Thresholds(window_s=60, max_error_rate=0.1, min_requests=5),
        offset=offset,
        run=False,
    )
    usage(two, count=6, errors=0)
    assert watch_step(watch.pk) is False
    watch.refresh_from_db()
    assert (watch.figures["count"], watch.figures["errors"]) == (6, 0)
    assert watch.state == "running"


def test_a_watch_whose_watcher_died_is_reported_abandoned_never_passed(api, served):
    one, two = served
    Slot.objects.filter(name="svc").update(active_version=two, previous_version=one)
    watch = watch_start(
        slot="svc",
        version=two,
        baseline={},
        thresholds=Thresholds(window_s=5, max_error_rate=0.1),
        run=False,  # no thread: as if its process had died at once
    )
    SwitchWatch.objects.filter(pk=watch.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    listed = api.get("/api/v1/switch/watches?slot=svc").json()
    assert listed[0]["state"] == "abandoned"
    assert "stopped" in listed[0]["verdict"] and "neither judged healthy" in listed[0]["verdict"]
    audit = AuditEvent.objects.get(action="slot.watch.abandoned")
    assert audit.target == "svc" and audit.after["watch"] == watch.pk
    assert watches_sweep() == 0  # judged once
    assert Slot.objects.get(name="svc").active_version == two


def test_a_new_watch_of_the_slot_supersedes_the_running_one(served):
    one, two = served
    Slot.objects.filter(name="svc").update(active_version=two, previous_version=one)
    thresholds = Thresholds(window_s=60, max_error_rate=0.1)
    first = watch_start(slot="svc", version=two, baseline={}, thresholds=thresholds, run=False)
    watch_start(slot="svc", version=two, baseline={}, thresholds=thresholds, run=False)
    first.refresh_from_db()
    assert first.state == "superseded"


def test_baseline_is_the_previous_versions_p95_before_the_switch(served):
    one, _ = served
    usage(one, count=40, latency_ms=4.0)
    baseline = baseline_measure(slot="svc", version_id=one.pk)
    assert baseline["count"] == 40 and 2.0 < baseline["p95_ms"] <= 4.0


def test_p95_regression_against_the_baseline_names_both_figures():
    thresholds = Thresholds(window_s=30, max_p95_ratio=1.5, min_requests=20)
    figures = {"count": 57, "errors": 0, "error_rate": 0.0, "p95_ms": 31.2, "elapsed_s": 12.0}
    verdict = judge(thresholds, figures, {"p95_ms": 13.0})
    assert verdict.regressed
    assert verdict.reason == (
        "p95 31.2 ms is 2.40x the previous version's 13.0 ms (> 1.5x) over 57 requests in 12.0 s"
    )
    assert not judge(thresholds, figures | {"p95_ms": 15.0}, {"p95_ms": 13.0}).regressed
    # Without a baseline the p95 is not compared, and says so.
    verdict = judge(thresholds, figures, {"p95_ms": None})
    assert not verdict.regressed and "no baseline" in verdict.reason


def test_too_few_requests_are_not_judged():
    thresholds = Thresholds(window_s=30, max_error_rate=0.05, min_requests=20)
    figures = {"count": 3, "errors": 3, "error_rate": 1.0, "p95_ms": None, "elapsed_s": 4.0}
    verdict = judge(thresholds, figures, {})
    assert not verdict.regressed
    assert verdict.reason == "only 3 requests in 4.0 s (min_requests 20): not judged"


def test_error_rate_regression_reason():
    thresholds = Thresholds(window_s=30, max_error_rate=0.05, min_requests=20)
    figures = {"count": 57, "errors": 24, "error_rate": 0.421, "p95_ms": 1.0, "elapsed_s": 12.0}
    verdict = judge(thresholds, figures, {})
    assert verdict.regressed
    assert verdict.reason == "error rate 0.42 > 0.05 (24 failed) over 57 requests in 12.0 s"


def test_watch_start_takes_the_callers_thresholds_as_a_dict_checked_like_the_api(served):
    from modelmgr.registry.validation import InvalidInput

    one, two = served
    Slot.objects.filter(name="svc").update(active_version=two, previous_version=one)
    with pytest.raises(InvalidInput, match="watch.max_error_rate is a fraction"):
        watch_start(
            slot="svc",
            version=two,
            baseline={},
            thresholds={"window_s": 30, "max_error_rate": 3},
            run=False,
        )
    assert not SwitchWatch.objects.exists()
    watch = watch_start(
        slot="svc",
        version=two,
        baseline={},
        thresholds={"window_s": 30, "max_p95_ratio": 2},
        run=False,
    )
    assert watch.thresholds == {
        "window_s": 30.0,
        "max_error_rate": None,
        "max_p95_ratio": 2.0,
        "min_requests": 20,
    }
    assert watch.previous_ref.endswith("/svc@1")


@pytest.mark.django_db(transaction=True)
def test_a_regression_whose_rollback_fails_says_so_and_the_failure_is_audited(served, settings):
    from tests.workerproc import free_port

    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"  # nobody answers
    one, two = served
    Slot.objects.filter(name="svc").update(active_version=two, previous_version=one)
    watch = watch_start(
        slot="svc",
        version=two,
        baseline={},
        thresholds=Thresholds(window_s=60, max_error_rate=0.05, min_requests=10),
        run=False,
    )
    usage(two, count=20, errors=12)
    assert watch_step(watch.pk) is True
    watch.refresh_from_db()
    assert watch.state == "rollback_failed"
    assert watch.verdict.startswith("error rate 0.60 > 0.05 (12 failed) over 20 requests")
    assert "the automatic rollback failed" in watch.verdict
    assert Slot.objects.get(name="svc").active_version == two
    failure = AuditEvent.objects.get(action="slot.rollback.auto")
    assert failure.outcome == "error" and failure.after["reason"] in watch.verdict
