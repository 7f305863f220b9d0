"""Pinning end to end against a real worker subprocess: PATCH {"pinned": true} is desired
state that the worker converges to, keeps across a crash, and that LRU eviction spares."""

from __future__ import annotations

import httpx
import pytest

from tests.deploy.live import live_worker, switch
from tests.inference.support import eventually, make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def pin(api, version, pinned: bool = True):
    response = api.patch(
        f"/api/v1/models/{version.model.name}/versions/{version.version}",
        {"pinned": pinned},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["pinned"] is pinned
    return response


def models(worker) -> dict[str, dict]:
    status = httpx.get(f"{worker.url}/status", timeout=10).json()
    return {model["ref"]: model for model in status["models"]}


def pinned_in(worker, ref: str):
    model = models(worker).get(ref)
    return model if model and model["pinned"] and model["state"] == "ready" else None


def test_a_pin_loads_survives_a_crash_and_unpins(
    api, owner_client, settings, owner, model_files, tmp_path
):
    keep = onnx_version(owner, model_files, tmp_path, name="keep")
    # No periodic pass during the test: what happens comes from the nudge and the restore.
    with live_worker(settings, MODELMGR_RECONCILE_INTERVAL_S=3600) as worker:
        assert models(worker) == {}
        pin(api, keep)  # no slot serves it
        model = eventually(lambda: pinned_in(worker, "keep@1"), what="the pin's load")
        assert model["slots"] == []
        page = owner_client.get("/status").content.decode()
        assert '<code>keep@1</code> <span class="badge info"' in page

        worker.kill()  # a crash: nothing of the pool survives but the database
        worker.start()
        worker.wait_ready()
        eventually(lambda: pinned_in(worker, "keep@1"), what="the pin restored")

        pin(api, keep, False)
        eventually(lambda: models(worker)["keep@1"]["pinned"] is False, what="the unpin")
        assert models(worker)["keep@1"]["state"] == "ready"  # cached now, evictable


def test_lru_eviction_spares_a_pinned_model_and_a_pin_too_big_is_reported(
    api, settings, owner, model_files, tmp_path, closed_port_worker
):
    """Budget 100 MB, models of 40 MB: the pinned one is the least recently used, yet the
    eviction a switch needs takes the unpinned cached one."""
    versions = {
        name: onnx_version(owner, model_files, tmp_path, name=name, seed=seed, min_vram_mb=40)
        for seed, name in enumerate(("keep", "cached", "incoming"))
    }
    make_slot("det", task="classifier")
    pin(api, versions["keep"])  # before the worker starts: restored with it
    with live_worker(settings, MODELMGR_WORKER_RAM_BUDGET_MB=100) as worker:
        eventually(lambda: pinned_in(worker, "keep@1"), what="the pin's restore")
        with worker.client() as client:
            loaded = client.post("/load", json={"version_id": versions["cached"].pk})
            assert loaded.status_code == 200 and loaded.json()["pinned"] is False
        assert models(worker)["keep@1"]["last_used"] < models(worker)["cached@1"]["last_used"]

        response = switch(api, {"det": "incoming@1"})
        assert response.status_code == 200, response.content
        assert set(models(worker)) == {"keep@1", "incoming@1"}
        assert models(worker)["keep@1"]["pinned"] is True

        huge = onnx_version(owner, model_files, tmp_path, name="huge", seed=9, min_vram_mb=500)
        pin(api, huge)
        status = eventually(
            lambda: api.get("/api/v1/status").json()["worker"]["status"]["pin_errors"] or None,
            what="the pin's error",
        )
        assert status == {str(huge.pk): "huge@1 needs 500 MB, 20 MB free of 100 MB budget"}
        assert set(models(worker)) == {"keep@1", "incoming@1"}  # nothing evicted for it
