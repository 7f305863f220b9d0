"""Profiling a version against a real worker: figures per batch size, a copy of its own
(serving goes on), one profile at a time, memory admission, and bad inputs as 4xx."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import Client

from modelmgr.models import AuditEvent, VersionProfile
from tests.conftest import make_token
from tests.deploy.live import live_worker, predict, switch
from tests.inference.support import gate_version, make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FIXED_SIGNATURE = {
    "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32"}],
}


def profile(api, ref: str, **body):
    return api.post(f"/api/v1/versions/{ref}/profile", body, content_type="application/json")


def test_profile_of_a_dynamic_batch_model_measures_each_batch_size_and_is_stored(
    api, settings, owner, model_files, tmp_path
):
    onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    with live_worker(settings):
        response = profile(api, "clf@1", iterations=20, max_seconds=4)
        assert response.status_code == 200, response.content
        body = response.json()
    assert body["version"] == "clf@1" and body["device"] == "cpu"
    assert body["dynamic_batch"] is True
    assert [r["batch_size"] for r in body["results"]] == [1, 2, 4, 8]
    for row in body["results"]:
        assert 1 <= row["iterations"] <= 20
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        # Throughput is rows per second of compute: batch / mean latency.
        expected = row["batch_size"] * 1000 / row["mean_ms"]
        assert expected / 2 <= row["throughput_per_s"] <= expected * 2
    assert body["memory_bytes"] > 0 and body["measured_bytes"] >= 0
    assert body["load_ms"] > 0
    # Stored with the version, and GET returns it.
    stored = api.get("/api/v1/versions/clf@1/profile")
    assert stored.status_code == 200
    assert stored.json()["id"] == body["id"]
    assert stored.json()["results"] == body["results"]
    assert VersionProfile.objects.filter(version__version="1").count() == 1
    event = AuditEvent.objects.get(action="version.profile")
    assert event.outcome == "ok" and event.target == "olivia/clf@1"
    assert event.after["batch_sizes"] == [1, 2, 4, 8]


def test_a_fixed_batch_model_is_profiled_at_batch_1_only(
    api, settings, owner, model_files, tmp_path
):
    onnx_version(owner, model_files, tmp_path, name="fixed", signature=FIXED_SIGNATURE)
    with live_worker(settings):
        refused = profile(api, "fixed@1", batch_sizes=[1, 4])
        assert refused.status_code == 422
        assert "fixed batch" in refused.json()["detail"]
        response = profile(api, "fixed@1", iterations=5, max_seconds=2)
        assert response.status_code == 200, response.content
    body = response.json()
    assert body["dynamic_batch"] is False
    assert [r["batch_size"] for r in body["results"]] == [1]
    # The refusal was audited and stored nothing.
    outcomes = list(
        AuditEvent.objects.filter(action="version.profile")
        .order_by("id")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["error", "ok"]
    assert VersionProfile.objects.count() == 1


def test_serving_goes_on_during_a_profile_and_a_second_one_is_refused(api, settings, owner):
    # A model that takes 5 ms per inference: the profile of its copy lasts its 6 s.
    served = gate_version(owner, name="det", version="1", delay_ms=5)
    other = gate_version(owner, name="det", version="2", delay_ms=5, scale=3.0)
    make_slot("det", task="classifier")
    with live_worker(settings) as worker:
        assert switch(api, {"det": "det@1"}).status_code == 200
        first: dict = {}
        background = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(owner, name='bg')}")

        def run_first():
            first["response"] = profile(background, "det@1", max_seconds=6, batch_sizes=[1, 8])

        thread = threading.Thread(target=run_first)
        thread.start()
        with worker.client() as control:
            deadline = time.monotonic() + 60
            while not (control.get("/status").json().get("profiling") or {}).get("ref") == (
                "det@1"
            ):
                assert thread.is_alive() and time.monotonic() < deadline, first
                time.sleep(0.02)
            refused = profile(api, "det@2", iterations=1)
            assert refused.status_code == 409, refused.content
            assert "one profile at a time" in refused.json()["detail"]
            assert "det@1" in refused.json()["detail"]
            # Meanwhile the slot answers every request, from the entry it serves.
            answered = 0
            while thread.is_alive() and answered < 40:
                response = predict(api, "det")
                assert response.status_code == 200, response.content
                assert response.json()["model"] == "det@1"
                answered += 1
            thread.join(120)
            assert answered > 0
            assert first["response"].status_code == 200, first["response"].content
            # The served entry was never touched: still loaded, still the slot's only.
            status = control.get("/status").json()
        serving = [m for m in status["models"] if m["ref"] == "det@1"]
        assert len(serving) == 1 and serving[0]["slots"] == ["det"]
        assert status["profiling"] is None
    assert served.profiles.count() == 1 and other.profiles.count() == 0
    assert [r["batch_size"] for r in first["response"].json()["results"]] == [1, 8]
    errors = AuditEvent.objects.filter(action="version.profile", outcome="error")
    assert errors.count() == 1 and "one profile at a time" in errors.get().error


def test_a_profile_that_does_not_fit_is_refused_naming_need_and_free(
    api, settings, owner, model_files, tmp_path
):
    onnx_version(owner, model_files, tmp_path, name="big", min_vram_mb=50_000_000)
    with live_worker(settings):
        response = profile(api, "big@1")
    assert response.status_code == 507
    detail = response.json()["detail"]
    assert "needs 50000000 MB" in detail and "free" in detail
    assert not VersionProfile.objects.exists()


def test_bad_profile_requests_answer_4xx_with_detail(api, settings, owner, model_files, tmp_path):
    onnx_version(owner, model_files, tmp_path, name="clf")
    assert profile(api, "nope@1").status_code == 404
    missing = api.get("/api/v1/versions/clf@1/profile")
    assert missing.status_code == 404 and "not been profiled" in missing.json()["detail"]
    bad = profile(api, "clf@1", iterations=0)
    assert bad.status_code == 422 and "iterations" in bad.json()["detail"]
    bad = profile(api, "clf@1", batch_sizes=[0, 2])
    assert bad.status_code == 422 and "batch_sizes" in bad.json()["detail"]
    settings.MODELMGR_WORKER_URL = "http://127.0.0.1:9"
    down = profile(api, "clf@1")
    assert down.status_code == 503 and "unavailable" in down.json()["detail"]
    # No body (curl -X POST): every option defaults.
    bare = api.generic("POST", "/api/v1/versions/clf@1/profile")
    assert bare.status_code == 503, bare.content
    bare = api.generic("POST", "/api/v1/versions/clf@1/profile", "", "application/json")
    assert bare.status_code == 503, bare.content
