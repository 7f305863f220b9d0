"""What the web asks a worker for on its own (a profile, a load test, the report's
environment and memory checks, the slots' memory, a recommendation, /status drift),
with two real workers of different memory budgets: each job goes to a worker that can
do it, and each figure holds for every worker that serves the slot."""

from __future__ import annotations

import httpx
import pytest

from modelmgr.models import AuditEvent, VersionProfile
from tests.deploy.test_preview_fleet import MB, two_workers
from tests.inference.support import onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def profile(api, ref: str, **body):
    return api.post(f"/api/v1/versions/{ref}/profile", body, content_type="application/json")


def test_a_profile_runs_on_the_named_worker_or_the_roomiest_and_says_which(api, settings, det):
    with two_workers(settings, (40, 512)):
        roomiest = profile(api, "clf@1", iterations=3, max_seconds=2)
        assert roomiest.status_code == 200, roomiest.content
        assert roomiest.json()["worker_id"] == "w2"  # 512 MB free against 40
        named = profile(api, "clf@1", iterations=3, max_seconds=2, worker="w1")
        assert named.status_code == 200, named.content
        assert named.json()["worker_id"] == "w1"
        unknown = profile(api, "clf@1", worker="w9")
        assert unknown.status_code == 422
        assert "'w9' is not registered (workers: w1, w2)" in unknown.json()["detail"]
    assert list(VersionProfile.objects.order_by("id").values_list("worker_id", flat=True)) == [
        "w2",
        "w1",
    ]
    audits = AuditEvent.objects.filter(action="version.profile").order_by("id")
    assert [(a.outcome, a.after.get("worker")) for a in audits] == [
        ("ok", "w2"),
        ("ok", "w1"),
        ("error", "w9"),
    ]


def test_the_report_checks_every_worker_serving_the_slot_and_names_the_one_that_fails(
    api, settings, owner, model_files, tmp_path, det
):
    big = onnx_version(
        owner, model_files, tmp_path, name="big", version="1", seed=3, min_vram_mb=100
    )
    with two_workers(settings, (40, 512)) as workers:
        body = api.get("/api/v1/versions/big@1/report", {"slot": "det", "load": "1"}).json()
        # The load test let its copy go again: no worker holds big@1 afterwards.
        for worker in workers:
            held = worker.client().get("/status").json()["models"]
            assert big.pk not in [m["version_id"] for m in held]
    checks = {check["name"]: check for check in body["checks"]}
    assert body["worker"]["reachable"] is True
    assert [w["name"] for w in body["worker"]["workers"]] == ["w1", "w2"]
    hardware = checks["hardware"]
    assert hardware["status"] == "fail"
    assert hardware["message"].startswith("worker w1: ")  # 100 MB needed, 40 MB budget
    # w2 has room; it warns only that the declared VRAM is checked against its RAM.
    assert "also asked: w2 warning" in hardware["message"]
    every = {w["name"]: w for w in hardware["details"]["workers"]}
    assert every["w1"]["status"] == "fail" and every["w2"]["status"] == "warning"
    assert "has no GPU" in every["w2"]["message"]
    assert [w["name"] for w in checks["dependencies"]["details"]["workers"]] == ["w1", "w2"]
    # The load test ran where the version fits among the slot's workers, and says so.
    load = checks["load_test"]
    assert load["status"] == "ok" and load["details"]["worker"] == "w2"
    assert "of worker w2" in load["message"]
    assert AuditEvent.objects.get(action="version.validate").after["worker"] == "w2"


def test_the_slots_page_and_recommendations_count_the_tightest_worker(
    owner_client, api, settings, owner, model_files, tmp_path, det
):
    onnx_version(owner, model_files, tmp_path, name="big", version="1", seed=3, min_vram_mb=100)
    with two_workers(settings, (40, 512)):
        page = owner_client.get("/settings").content.decode()
        ranked = api.post(
            "/api/v1/recommend", {"task": "classifier"}, content_type="application/json"
        ).json()
    assert "the tightest of the 2 workers serving it has" in page
    assert "needs 100.0 MB, does NOT fit" in page  # against w1's 40 MB, not w2's 512
    assert ranked["memory_source"] == "worker"
    assert ranked["available_bytes"] <= 40 * MB  # w1's, not w2's 512 MB
    fits = {item["ref"]: item["fits"] for item in ranked["items"]}
    assert fits == {"big@1": False, "clf@1": True}


def test_status_shows_one_drift_row_per_slot_over_both_workers(owner_client, settings, det):
    with two_workers(settings, (512, 512)) as workers:
        for worker in workers:
            answer = httpx.post(
                f"{worker.url}/infer/det", json={"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}}
            )
            assert answer.status_code == 200, answer.text
        html = owner_client.get("/status").content.decode()
    assert html.count('id="drift-badge-det"') == 1
    assert html.count('<tr data-slot="det">') == 1
    assert "w1: learning" in html and "w2: learning" in html
