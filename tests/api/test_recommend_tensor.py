"""POST /api/v1/recommend for tensor models: accuracy, profiled speed and memory weigh
by the priority; what does not fit the stated budget is ranked out with its reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.deploy.support import bucket_row, profile_row, version_of

pytestmark = pytest.mark.django_db
URL = "/api/v1/recommend"
GB = 1024**3


def ask(api, **body):
    response = api.post(URL, {"task": "detector", **body}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def pair(owner):
    """A fast, small, less accurate detector and a slow, big, accurate one."""
    fast = version_of(owner, "det-small", task="detector", val_accuracy=0.81, min_vram_mb=200)
    big = version_of(owner, "det-large", task="detector", val_accuracy=0.95, min_vram_mb=3000)
    profile_row(fast, 0.5)
    profile_row(big, 6.0)
    return fast, big


def test_speed_prefers_the_fast_small_one_and_quality_the_accurate_big_one(api, pair):
    speed = ask(api, priority="speed", available_vram_gb=8)
    assert [i["model"] for i in speed["items"]] == ["det-small", "det-large"]
    quality = ask(api, priority="quality", available_vram_gb=8)
    assert [i["model"] for i in quality["items"]] == ["det-large", "det-small"]
    first = quality["items"][0]
    assert first["accuracy"] == 0.95 and first["latency_ms"] == 6.0
    assert first["throughput_per_s"] > 0
    reasons = " | ".join(first["reasons"])
    assert "accuracy: val_accuracy 0.95 (the best)" in reasons
    assert "profiled on cpu: 6 ms p50 at batch 1" in reasons
    assert "declares min VRAM 3000 MB" in reasons
    fast_reasons = " | ".join(speed["items"][0]["reasons"])
    assert "100% of the fastest's speed" in fast_reasons


def test_a_stated_budget_ranks_out_what_does_not_fit_with_the_reason(api, pair):
    body = ask(api, priority="quality", available_bytes=1 * GB)
    assert body["memory_source"] == "request" and body["available_bytes"] == GB
    first, last = body["items"]
    # The accurate one would win on quality, but it does not fit in 1 GB.
    assert first["model"] == "det-small" and first["fits"] is True
    assert last["model"] == "det-large" and last["fits"] is False
    assert last["reasons"][0].startswith("does not fit: needs 2.93 GB of 1.00 GB")


def test_measured_latency_stands_in_for_a_missing_profile(api, owner):
    now = timezone.now() - timedelta(minutes=3)
    quick = version_of(owner, "clf-a", task="classifier", val_accuracy=0.9)
    slow = version_of(owner, "clf-b", task="classifier", val_accuracy=0.9)
    bucket_row(quick, "clf", now, [1.0] * 20)
    bucket_row(slow, "clf", now, [20.0] * 20)
    body = ask(api, task="classifier", priority="speed", available_vram_gb=4)
    assert [i["model"] for i in body["items"]] == ["clf-a", "clf-b"]
    assert "measured serving latency 1 ms mean" in " | ".join(body["items"][0]["reasons"])
    unknown = version_of(owner, "clf-c", task="classifier")
    body = ask(api, task="classifier", priority="speed", available_vram_gb=4)
    reasons = next(i for i in body["items"] if i["model"] == "clf-c")["reasons"]
    assert "speed unknown: not profiled and too little measured usage" in reasons
    assert unknown.ref == "clf-c@1"


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"available_bytes": -5}, "available_bytes"),
        ({"available_bytes": 10, "available_vram_gb": 1}, "not both"),
        ({"priority": "cheapest", "available_bytes": 10}, "priority"),
    ],
)
def test_bad_tensor_recommend_requests_are_422(api, body, word):
    response = api.post(URL, {"task": "detector", **body}, content_type="application/json")
    assert response.status_code == 422
    assert word in response.json()["detail"]
