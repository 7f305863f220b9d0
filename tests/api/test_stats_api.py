"""/api/v1/stats over real UsageBucket rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.deploy.support import bucket_row, version_of

pytestmark = pytest.mark.django_db


def test_stats_aggregate_counts_latency_and_a_series(api, owner):
    v1 = version_of(owner, version="1")
    now = timezone.now()
    bucket_row(v1, "clf", now - timedelta(minutes=1), [1.0, 2.0], errors=1)
    bucket_row(v1, "clf", now, [3.0])
    response = api.get("/api/v1/stats?slot=clf&since=1h")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["totals"]["count"] == 4 and body["totals"]["errors"] == 1
    assert body["totals"]["min_ms"] == 1.0 and body["totals"]["max_ms"] == 3.0
    assert 1.0 <= body["totals"]["p50_ms"] <= 3.0
    assert body["groups"][0]["ref"] == "clf@1" and body["groups"][0]["slot"] == "clf"
    assert [m["count"] for m in body["series"]] == [3, 1]


def test_stats_filter_by_version_ref(api, owner):
    v1, v2 = version_of(owner, version="1"), version_of(owner, version="2")
    bucket_row(v1, "clf", timezone.now(), [1.0])
    bucket_row(v2, "clf", timezone.now(), [1.0, 1.0])
    assert api.get("/api/v1/stats?version=clf@2").json()["totals"]["count"] == 2
    assert api.get("/api/v1/stats?model=clf&version=1").json()["totals"]["count"] == 1


def test_malformed_since_is_422(api):
    response = api.get("/api/v1/stats?since=soon")
    assert response.status_code == 422
    assert "since='soon'" in response.json()["detail"]


def test_read_only_token_may_read_stats(client, read_only_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {read_only_token}"
    assert client.get("/api/v1/stats").status_code == 200
