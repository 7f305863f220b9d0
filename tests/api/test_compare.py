"""GET /api/v1/compare: two versions side by side, with the signature diff, metric and
profile deltas and measured serving figures; bad refs answer 4xx naming them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.deploy.support import bucket_row, profile_row, version_of

pytestmark = pytest.mark.django_db

WIDER = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "scores", "shape": ["batch", 2], "dtype": "float32"}],
}


def compare(api, a: str, b: str):
    return api.get("/api/v1/compare", {"a": a, "b": b})


def test_compare_shows_the_signature_diff_metric_and_profile_deltas(api, owner):
    old = version_of(owner, "det", "1", task="detector", val_accuracy=0.8, min_vram_mb=100)
    new = version_of(
        owner, "det", "2", task="detector", val_accuracy=0.9, signature=WIDER, min_vram_mb=300
    )
    profile_row(old, 2.0)
    profile_row(new, 1.0, batches=(1, 2))
    bucket_row(old, "det", timezone.now() - timedelta(minutes=2), [2.0] * 9, errors=1)
    response = compare(api, "det@1", "det@2")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["a"], body["b"], body["same_version"]) == ("det@1", "det@2", False)
    # The output rename is a breaking change for a caller of det@1.
    (change,) = body["signature"]["changes"]
    assert change["kind"] == "renamed" and change["breaking"] is True
    assert body["signature"]["breaking"] is True
    accuracy = next(m for m in body["metrics"] if m["metric"] == "val_accuracy")
    assert (accuracy["a"], accuracy["b"]) == (0.8, 0.9)
    assert accuracy["delta"] == pytest.approx(0.1)
    rows = {r["batch_size"]: r for r in body["profile"]["by_batch"]}
    assert sorted(rows) == [1, 2, 4, 8]
    assert rows[1]["p50_ms"] == {"a": 2.0, "b": 1.0, "delta": -1.0, "ratio": 0.5}
    assert rows[1]["throughput_per_s"]["ratio"] == pytest.approx(2.0, rel=0.01)
    # det@2 was not profiled at batch 8: no figure, no delta.
    assert rows[8]["p50_ms"]["b"] is None and rows[8]["p50_ms"]["delta"] is None
    assert body["profile"]["notes"] == []
    assert body["profile"]["a"]["device"] == "cpu"
    min_vram = next(m for m in body["metadata"] if m["field"] == "min_vram_mb")
    assert (min_vram["a"], min_vram["b"], min_vram["same"]) == (100, 300, False)
    assert body["size"]["estimate_bytes"]["delta"] > 0
    # Measured serving figures: det@1 served 10 requests, one failed; det@2 none.
    assert body["stats"]["a"]["count"] == 10 and body["stats"]["b"] is None
    assert body["stats"]["figures"]["error_rate"]["a"] == pytest.approx(0.1)


def test_compare_says_what_was_not_profiled(api, owner):
    version_of(owner, "clf", "1")
    version_of(owner, "clf", "2")
    body = compare(api, "clf@1", "clf@2").json()
    assert body["signature"]["same"] is True and body["signature"]["changes"] == []
    assert body["profile"]["notes"] == ["not profiled yet: clf@1, clf@2"]
    assert body["profile"]["by_batch"] == []


def test_compare_bad_refs_are_4xx_with_detail(api, owner, other_user):
    version_of(owner, "clf", "1")
    version_of(other_user, "secret", "1")
    missing = compare(api, "clf@1", "clf@9")
    assert missing.status_code == 404 and "9" in missing.json()["detail"]
    hidden = compare(api, "clf@1", "oscar/secret@1")
    assert hidden.status_code in (403, 404) and hidden.json()["detail"]
    bad = api.get("/api/v1/compare", {"a": "clf@1"})
    assert bad.status_code == 422 and "b" in bad.json()["detail"]
    malformed = compare(api, "clf@1", "@@@")
    assert malformed.status_code in (404, 422) and malformed.json()["detail"]
