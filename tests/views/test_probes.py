"""The web process's /healthz, /readyz and /metrics, anonymous, through the test client."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import upload
from tests.deploy.live import live_worker, switch
from tests.inference.support import make_slot, onnx_version

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_healthz_answers_without_the_worker_or_a_login(client, closed_port_worker):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_503_naming_the_worker_while_it_is_down(client, closed_port_worker):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["checks"]["database"] == "ok"
    assert closed_port_worker in body["detail"] and "does not answer" in body["detail"]
    assert response["Retry-After"]
    samples = scrape(client)
    assert value(samples, "modelmgr_worker_up") == 0
    assert value(samples, "modelmgr_worker_ready") == 0


def test_uploads_are_counted_by_outcome(client, api, model_files, tmp_path):
    onnx_path = model_files.onnx(tmp_path / "upload" / "model.onnx")
    before = scrape(client)
    assert upload(api, "det", onnx_path, version="1", task="detector").status_code == 201
    assert upload(api, "det", onnx_path, version="1").status_code == 409
    after = scrape(client)
    for outcome, added in (("ok", 1), ("refused", 1), ("error", 0)):
        key = ("modelmgr_uploads_total", (("outcome", outcome),))
        assert after[key] - before[key] == added, outcome


def test_metrics_need_the_token_when_one_is_set(client, settings, closed_port_worker):
    settings.MODELMGR_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert "modelmgr_switches_total" in str(
        scrape(client, HTTP_AUTHORIZATION="Bearer s3cret").keys()
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_ready_with_the_worker_and_switches_counted(
    client, api, settings, owner, model_files, tmp_path
):
    v1 = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    onnx_version(owner, model_files, tmp_path, name="clf", version="2", seed=1)
    make_slot("clf", v1, task="classifier")
    with live_worker(settings):
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.content
        assert ready.json() == {"ready": True, "checks": {"database": "ok", "worker": "ok"}}
        before = scrape(client)
        assert value(before, "modelmgr_worker_up") == 1
        assert value(before, "modelmgr_worker_ready") == 1
        assert switch(api, {"clf": "clf@2"}).status_code == 200
        assert switch(api, {"clf": "clf@404"}).status_code == 404
        after = scrape(client)
    for outcome, added in (("ok", 1), ("refused", 1), ("error", 0)):
        key = ("modelmgr_switches_total", (("outcome", outcome),))
        assert after[key] - before[key] == added, outcome
