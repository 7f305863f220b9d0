"""The drift summaries and statistics on their own (inference.drift.features, .tracker)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from inference.drift.features import request_features, tensor_features
from inference.drift.monitor import QUEUE_LIMIT, DriftMonitor
from inference.drift.tracker import FeatureBins, Ring, Thresholds, VersionTracker, ks_test, psi


def test_features_per_vector_element_per_image_channel_and_capped():
    rng = np.random.default_rng(0)
    assert list(tensor_features("s", rng.normal(size=5))) == ["s"]
    vectors = tensor_features("x", rng.normal(size=(8, 3)))
    assert list(vectors) == ["x[0]", "x[1]", "x[2]"] and len(vectors["x[0]"]) == 8
    nchw = rng.normal(size=(2, 3, 16, 16))
    channels = tensor_features("image", nchw)
    assert list(channels) == ["image[c=0]", "image[c=1]", "image[c=2]"]
    assert channels["image[c=1]"][0] == pytest.approx(nchw[0, 1].mean())
    nhwc = rng.normal(size=(2, 16, 16, 3))
    assert tensor_features("image", nhwc)["image[c=2]"][1] == pytest.approx(nhwc[1, :, :, 2].mean())
    sequence = tensor_features("seq", rng.normal(size=(4, 10, 2)))
    assert list(sequence) == ["seq[f=0]", "seq[f=1]"]
    assert len(tensor_features("wide", rng.normal(size=(2, 500)), cap=16)) == 16
    assert tensor_features("text", np.array(["a", "b"])) == {}
    both = request_features({"x": np.ones((2, 2))}, {"y": np.zeros((2, 1))})
    assert set(both) == {("input", "x[0]"), ("input", "x[1]"), ("output", "y[0]")}


def test_binned_ks_is_scipys_two_sample_test_on_the_bins():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=700)
    current = rng.normal(0.3, 1.0, size=450)
    bins = FeatureBins(reference)
    counts = bins.counts(bins.index(current))
    statistic, p_value = ks_test(bins.reference, counts)
    expected = ks_2samp(bins.index(reference), bins.index(current), method="asymp")
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)


def test_psi_of_deciles_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(2)
    bins = FeatureBins(rng.normal(size=1000))
    same = bins.coarse(bins.counts(bins.index(rng.normal(size=1000))))
    moved = bins.coarse(bins.counts(bins.index(rng.normal(1.0, 1.0, size=1000))))
    reference = bins.coarse(bins.reference)
    assert len(reference) == 10 and reference.sum() == 1000
    assert psi(reference, same) < 0.05
    assert psi(reference, moved) > 0.5


def test_the_ring_keeps_the_last_rows():
    ring = Ring(5)
    ring.push(np.array([1, 2, 3], dtype=np.uint8))
    ring.push(np.array([4, 5, 6, 7], dtype=np.uint8))
    assert sorted(ring.current().tolist()) == [3, 4, 5, 6, 7]
    ring.push(np.arange(10, dtype=np.uint8))
    assert sorted(ring.current().tolist()) == [5, 6, 7, 8, 9]


def test_a_constant_feature_never_drifts_on_the_same_constant():
    tracker = VersionTracker("s", 1, reference_requests=40)
    for _ in range(80):
        tracker.add({("input", "c"): np.array([3.0])})
    report = tracker.evaluate(Thresholds())
    assert report["status"] == "ok" and report["moved"] == []


def test_observe_skips_rather_than_waits_when_the_drift_thread_falls_behind():
    monitor = DriftMonitor(enabled=True)
    monitor._thread = object()  # no thread drains: the queue only fills
    monitor.max_per_s = 10**9
    x = {"x": np.zeros((1, 4))}
    for _ in range(QUEUE_LIMIT + 10):
        monitor.observe("s", 1, x, x)
    assert monitor.skipped == 10
    off = DriftMonitor(enabled=False)
    off.observe("s", 1, x, x)
    assert off.queue.qsize() == 0


def test_observe_summarises_at_most_max_per_s_requests_a_second():
    monitor = DriftMonitor(enabled=True)
    monitor._thread = object()
    monitor.max_per_s = 5
    now = [100.2]
    monitor.clock = lambda: now[0]
    x = {"x": np.zeros((1, 4))}
    for _ in range(8):
        monitor.observe("s", 1, x, x)
    assert monitor.queue.qsize() == 5 and monitor.skipped == 3
    now[0] = 101.0  # the next second has a budget of its own
    monitor.observe("s", 1, x, x)
    assert monitor.queue.qsize() == 6


def test_a_batch_of_requests_counts_as_those_requests_one_by_one():
    rng = np.random.default_rng(8)
    requests = [
        ({"x": rng.normal(size=(1 + i % 3, 4))}, {"y": rng.normal(size=(1 + i % 3, 2))})
        for i in range(130)
    ]
    one_by_one, batched = DriftMonitor(enabled=True), DriftMonitor(enabled=True)
    for monitor in (one_by_one, batched):
        monitor.overrides["s"] = 50
    for inputs, outputs in requests:
        one_by_one.summarise("s", 1, inputs, outputs)
    for start in range(0, 130, 40):  # batches that straddle the end of the reference
        batched.summarise_many([("s", 1, i, o) for i, o in requests[start : start + 40]])
    expected = one_by_one.report("s", serving_version=1)["versions"][0]
    got = batched.report("s", serving_version=1)["versions"][0]
    assert got["reference"] == expected["reference"] and got["reference"]["requests"] == 50
    assert got["features"] == expected["features"] and got["requests"] == 130
