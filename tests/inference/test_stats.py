"""Usage counters: recorded per request, flushed into per-minute UsageBucket rows and
the all-time UsageTotal row of each version and slot."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from inference import stats
from inference.stats import HISTOGRAM_SIZE, TPS_HISTOGRAM_SIZE, Tokens, UsageRecorder
from modelmgr.models import LATENCY_BUCKETS_MS, UsageBucket, UsageTotal
from tests.inference.support import onnx_version

pytestmark = pytest.mark.django_db
MINUTE = 29_000_000  # a fixed minute (epoch // 60), so no test straddles a minute boundary


@pytest.fixture
def frozen_minute(monkeypatch):
    monkeypatch.setattr(stats, "now_s", lambda: MINUTE * 60 + 30.0)
    return datetime.fromtimestamp(MINUTE * 60, tz=UTC)


def test_requests_are_counted_and_flushed_per_slot_version_and_minute(
    owner, model_files, tmp_path, frozen_minute
):
    version = onnx_version(owner, model_files, tmp_path)
    recorder = UsageRecorder()
    for latency in (0.02, 0.5, 3.0):
        recorder.record("det", version.pk, latency, ok=True)
    recorder.record("det", version.pk, None, ok=False)
    recorder.record("other", version.pk, 1.0, ok=True)
    assert recorder.flush() == 2
    row = UsageBucket.objects.get(slot_name="det")
    assert (row.version_id, row.minute, row.count, row.errors) == (version.pk, frozen_minute, 4, 1)
    assert row.min_ms == 0.02 and row.max_ms == 3.0 and row.total_ms == pytest.approx(3.52)
    assert len(row.histogram) == len(LATENCY_BUCKETS_MS) + 1 == HISTOGRAM_SIZE
    assert sum(row.histogram) == row.count - row.errors
    for latency in (0.02, 0.5, 3.0):
        index = next(i for i, bound in enumerate(LATENCY_BUCKETS_MS) if latency <= bound)
        assert row.histogram[index] >= 1
    assert UsageBucket.objects.get(slot_name="other").count == 1
    assert recorder.flush() == 0  # nothing pending any more


def test_refused_requests_are_counted_apart_from_errors_and_add_up_across_flushes(
    owner, model_files, tmp_path, frozen_minute
):
    version = onnx_version(owner, model_files, tmp_path)
    recorder = UsageRecorder()
    recorder.record("det", version.pk, 1.0, ok=True)
    recorder.record("det", version.pk, None, ok=False, refused=True)
    recorder.record("det", version.pk, None, ok=False)
    recorder.flush()
    recorder.record("det", version.pk, None, ok=False, refused=True)
    recorder.flush()
    row = UsageBucket.objects.get(slot_name="det")
    assert (row.count, row.errors, row.refused) == (4, 1, 2)
    assert sum(row.histogram) == row.count - row.errors - row.refused


def test_second_flush_adds_to_the_minute_row(owner, model_files, tmp_path, frozen_minute):
    version = onnx_version(owner, model_files, tmp_path)
    recorder = UsageRecorder()
    recorder.record("det", version.pk, 2.0, ok=True)
    recorder.flush()
    recorder.record("det", version.pk, 0.1, ok=True)
    recorder.record("det", version.pk, 9.0, ok=True)
    recorder.flush()
    row = UsageBucket.objects.get()
    assert (row.count, row.min_ms, row.max_ms) == (3, 0.1, 9.0)
    assert row.total_ms == pytest.approx(11.1) and sum(row.histogram) == 3


def test_generation_tokens_and_timings_add_up_across_flushes(
    owner, model_files, tmp_path, frozen_minute
):
    version = onnx_version(owner, model_files, tmp_path)
    recorder = UsageRecorder()
    recorder.record("llm", version.pk, 50.0, ok=True, tokens=Tokens(7, 10, 12.0, 200.0))
    recorder.record("llm", version.pk, 30.0, ok=True, tokens=Tokens(5, 1, 8.0, None))
    recorder.flush()
    # A failed generation counts its tokens, but its timings say nothing about speed.
    recorder.record("llm", version.pk, None, ok=False, tokens=Tokens(3, 2, 1.0, 999.0))
    recorder.record("llm", version.pk, 40.0, ok=True, tokens=Tokens(4, 6, 20.0, 50.0))
    recorder.flush()
    row = UsageBucket.objects.get()
    assert (row.count, row.errors) == (4, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (19, 19)
    assert (row.ttft_min_ms, row.ttft_max_ms) == (8.0, 20.0)
    assert row.ttft_total_ms == pytest.approx(40.0) and sum(row.ttft_histogram) == 3
    assert (row.tps_min, row.tps_max) == (50.0, 200.0) and sum(row.tps_histogram) == 2
    assert len(row.ttft_histogram) == HISTOGRAM_SIZE
    assert len(row.tps_histogram) == TPS_HISTOGRAM_SIZE


def test_tensor_requests_store_no_token_histograms(owner, model_files, tmp_path, frozen_minute):
    version = onnx_version(owner, model_files, tmp_path)
    recorder = UsageRecorder()
    recorder.record("det", version.pk, 1.0, ok=True)
    recorder.flush()
    row = UsageBucket.objects.get()
    assert (row.prompt_tokens, row.ttft_histogram, row.tps_histogram) == (0, [], [])


def test_latency_beyond_the_last_bound_lands_in_the_overflow_bucket(
    owner, model_files, tmp_path, frozen_minute
):
    version = onnx_version(owner, model_files, tmp_path)
    recorder = UsageRecorder()
    recorder.record("det", version.pk, LATENCY_BUCKETS_MS[-1] * 2, ok=True)
    recorder.flush()
    assert UsageBucket.objects.get().histogram[-1] == 1


def test_the_all_time_total_is_the_sum_of_every_minute_and_every_worker(
    owner, model_files, tmp_path, monkeypatch
):
    """Two workers (two recorders) flush into the same minutes over three minutes: each
    slot's total row adds up every bucket, extremes and histograms included."""
    version = onnx_version(owner, model_files, tmp_path)
    first, second = UsageRecorder(), UsageRecorder()
    for minute, latencies in enumerate(([1.0, 4.0], [0.2], [7.5, 0.3, 2.0])):
        monkeypatch.setattr(stats, "now_s", lambda minute=minute: (MINUTE + minute) * 60 + 5.0)
        for latency in latencies:
            first.record("det", version.pk, latency, ok=True)
        second.record("det", version.pk, None, ok=False)
        second.record("det", version.pk, None, ok=False, refused=True)
        second.record("llm", version.pk, 10.0, ok=True, tokens=Tokens(3, 4, 5.0, 100.0))
        first.flush()
        second.flush()
    assert UsageBucket.objects.filter(slot_name="det").count() == 3
    det = UsageTotal.objects.get(version=version, slot_name="det")
    assert (det.count, det.errors, det.refused) == (12, 3, 3)
    assert (det.min_ms, det.max_ms) == (0.2, 7.5) and det.total_ms == pytest.approx(15.0)
    buckets = UsageBucket.objects.filter(slot_name="det")
    assert det.histogram == [sum(h) for h in zip(*(b.histogram for b in buckets), strict=True)]
    assert det.last_used == datetime.fromtimestamp((MINUTE + 2) * 60 + 5.0, tz=UTC)
    llm = UsageTotal.objects.get(version=version, slot_name="llm")
    assert (llm.count, llm.prompt_tokens, llm.completion_tokens) == (3, 9, 12)
    assert sum(llm.ttft_histogram) == 3 and sum(llm.tps_histogram) == 3
    assert UsageTotal.objects.count() == 2


def test_usage_of_a_deleted_version_is_dropped(owner, model_files, tmp_path, frozen_minute):
    version = onnx_version(owner, model_files, tmp_path)
    recorder = UsageRecorder()
    recorder.record("det", version.pk, 1.0, ok=True)
    version.delete()
    assert recorder.flush() == 0 and recorder.pending() == {}
    assert not UsageBucket.objects.exists() and not UsageTotal.objects.exists()


def test_request_through_the_worker_is_recorded(
    worker, owner, model_files, tmp_path, frozen_minute
):
    version = onnx_version(owner, model_files, tmp_path)
    worker.switch(switch_id="s", slots={"det": version.pk})
    worker.infer_blocking("det", {"x": np.ones((2, 4), dtype=np.float32)})
    assert worker.flush_stats() == 1
    row = UsageBucket.objects.get()
    assert (row.slot_name, row.version_id, row.count, row.errors) == ("det", version.pk, 1, 0)
    assert row.last_used is not None
