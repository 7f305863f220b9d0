"""The fit preview of a switch on several real workers: each worker the switch would go
to is asked about its own memory and cache, and the switch fits only if it fits on
every one of them."""

from __future__ import annotations

import contextlib

import pytest
from django.template.loader import render_to_string

from modelmgr.models import Worker as WorkerRow
from tests.deploy.test_fleet_live import FLEET_ENV
from tests.inference.support import eventually, make_slot, onnx_version
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
MB = 1024 * 1024


@contextlib.contextmanager
def two_workers(settings, budgets_mb: tuple[int, int]):
    settings.MODELMGR_FLEET_REFRESH_S = 0.05
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(
                start_worker(
                    env={
                        **FLEET_ENV,
                        "MODELMGR_WORKER_NAME": f"w{i}",
                        "MODELMGR_WORKER_RAM_BUDGET_MB": str(budget),
                    }
                )
            )
            for i, budget in enumerate(budgets_mb, start=1)
        ]
        for worker in workers:
            worker.wait_ready()
        settings.MODELMGR_WORKER_URL = workers[0].url
        eventually(lambda: WorkerRow.objects.count() == 2, what="both registered")
        yield workers


def preview(api, body: dict):
    response = api.post("/api/v1/switch/preview", body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def versions(owner, model_files, tmp_path):
    served = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    make_slot("clf", served, task="classifier")
    older, candidate = (
        onnx_version(owner, model_files, tmp_path, name=name, version="1", seed=i, min_vram_mb=25)
        for i, name in ((1, "older"), (2, "next"))
    )
    return served, older, candidate


def test_each_worker_reports_its_own_evictions_and_the_switch_fits_on_both(api, settings, versions):
    _, older, candidate = versions
    with two_workers(settings, (40, 512)) as (w1, w2):
        with w1.client() as client:  # only w1 has a cached model it would give up
            assert client.post("/load", json={"version_id": older.pk}).status_code == 200
        body = preview(api, {"clf": candidate.ref})
        assert body["worker"] == {"reachable": True, "error": ""}
        lines = {line["name"]: line for line in body["workers"]}
        assert sorted(lines) == ["w1", "w2"] and lines["w1"]["slots"] == ["clf"]
        assert [e["ref"] for e in lines["w1"]["evictions"]] == ["older@1"]
        assert lines["w2"]["evictions"] == []
        assert lines["w1"]["memory"]["budget_bytes"] == 40 * MB
        assert lines["w2"]["memory"]["budget_bytes"] == 512 * MB
        assert [(e["ref"], e["worker"]) for e in body["evictions"]] == [("older@1", "w1")]
        assert body["fits"] is True and body["slots"]["clf"]["fits"] is True
        assert body["slots"]["clf"]["needed_bytes"] == 25 * MB
        page = render_to_string("partials/fit_preview.html", {"preview": body})
        assert "Fits on every worker" in page and 'data-worker="w2"' in page
        # Nothing changed anywhere: older@1 is still cached on w1, next@1 nowhere.
        for worker in (w1, w2):
            with worker.client() as client:
                loaded = {m["ref"] for m in client.get("/status").json()["models"]}
            assert "next@1" not in loaded
        with w1.client() as client:
            assert "older@1" in {m["ref"] for m in client.get("/status").json()["models"]}


def test_a_switch_that_fits_on_one_worker_only_does_not_fit(api, settings, versions):
    _, _, candidate = versions
    with two_workers(settings, (512, 20)):
        body = preview(api, {"clf": candidate.ref})
        lines = {line["name"]: line for line in body["workers"]}
        assert (lines["w1"]["fits"], lines["w2"]["fits"]) == (True, False)
        assert body["fits"] is False and body["slots"]["clf"]["fits"] is False
        assert body["slots"]["clf"]["detail"].startswith("w2: next@1 needs 25.0 MB, only 20.0 MB")
        page = render_to_string("partials/fit_preview.html", {"preview": body})
        assert "Does not fit on every worker" in page
