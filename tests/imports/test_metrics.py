"""Import jobs in the web process's /metrics: created, done, failed."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelmgr.imports.runner import import_job_run

pytestmark = pytest.mark.django_db
PATH = "/models/tiny.onnx"


def imports_counted(client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name == "modelmgr_imports_total"
    }


def test_imports_are_counted_when_created_done_and_failed(
    api, server, onnx_data, closed_port_worker
):
    server.add(PATH, onnx_data)
    before = imports_counted(api)
    ids = []
    for url, model in ((server.url(PATH), "good"), (server.url("/models/missing.onnx"), "bad")):
        created = api.post(
            "/api/v1/imports", {"url": url, "model": model}, content_type="application/json"
        )
        assert created.status_code == 202, created.content
        ids.append(created.json()["id"])
    for job_id in ids:
        import_job_run(job_id)
    assert [api.get(f"/api/v1/imports/{i}").json()["state"] for i in ids] == ["done", "failed"]
    after = imports_counted(api)
    assert {k: after[k] - before[k] for k in after} == {"created": 2, "done": 1, "failed": 1}
