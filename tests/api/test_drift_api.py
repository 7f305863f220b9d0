"""/api/v1/slots/{slot}/drift, the /status page and the model page through a real worker."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from modelmgr.models import AuditEvent
from tests.conftest import make_token
from tests.deploy.live import live_worker
from tests.inference.support import make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
REFERENCE = 100


@pytest.fixture
def det(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    make_slot("det", version, task="classifier")
    make_slot("empty", None)
    return version


def send(worker, rng, *, mean: float, count: int) -> None:
    with httpx.Client(base_url=worker.url, timeout=30) as http:
        for _ in range(count):
            x = rng.normal(mean, 1.0, size=(1, 4)).round(5).tolist()
            assert http.post("/infer/det", json={"inputs": {"x": x}}).status_code == 200


def drift_after(api, requests: int) -> dict:
    """The API's report once the worker summarised ``requests`` (a hang guard, no timing)."""
    for _ in range(600):
        response = api.get("/api/v1/slots/det/drift")
        assert response.status_code == 200, response.content
        body = response.json()
        served = [v for v in body["versions"] if v["version_id"] == body["version_id"]]
        if served and served[0]["requests"] >= requests:
            return body
        time.sleep(0.05)
    raise AssertionError(f"never summarised {requests} requests: {body}")


def status_page_showing(client, text: str) -> str:
    """/status once it shows ``text``: the worker refreshes its drift summary a few times
    a second (the loop's limit guards against a hang; it is not a timing assertion)."""
    for _ in range(200):
        page = client.get("/status").content.decode()
        if text in page:
            return page
        time.sleep(0.05)
    raise AssertionError(f"/status never showed {text}")


def test_drift_shows_in_the_api_the_status_page_and_the_model_page(
    api, owner_client, settings, det
):
    rng = np.random.default_rng(5)
    with live_worker(settings, MODELMGR_DRIFT_REFERENCE=REFERENCE) as worker:
        send(worker, rng, mean=0.0, count=2 * REFERENCE)
        steady = drift_after(api, 2 * REFERENCE)
        assert steady["status"] == "ok" and steady["ref"] == "clf@1"
        assert steady["versions"][0]["ref"] == "clf@1"
        page = status_page_showing(owner_client, 'data-status="ok"')
        assert 'id="drift-badge-det"' in page

        send(worker, rng, mean=2.0, count=REFERENCE)
        shifted = drift_after(api, 3 * REFERENCE)
        assert shifted["status"] == "drift"
        assert "x[0]" in shifted["moved"]

        page = status_page_showing(owner_client, 'data-status="drift"')
        assert 'id="drift-badge-det"' in page
        assert "<code>x[0]</code>" in page or "<code>y[0]</code>" in page

        model_page = owner_client.get("/models/clf?version=1").content.decode()
        assert 'id="drift"' in model_page and "Data drift" in model_page
        assert 'class="drift-plot"' in model_page and "data-drift=" in model_page
        assert 'data-feature="x[0]"' in model_page


def test_reference_upload_and_reset_are_audited_and_bad_inputs_are_4xx(
    api, owner, other_user, settings, det, client
):
    rng = np.random.default_rng(9)
    sample = rng.normal(0.0, 1.0, size=(200, 4)).round(5).tolist()
    with live_worker(settings, MODELMGR_DRIFT_REFERENCE=REFERENCE) as worker:
        uploaded = api.post(
            "/api/v1/slots/det/drift/reference",
            {"inputs": {"x": sample}},
            content_type="application/json",
        )
        assert uploaded.status_code == 200, uploaded.content
        tracker = uploaded.json()["versions"][0]
        assert tracker["reference"]["source"] == "sample" and tracker["reference"]["complete"]
        assert AuditEvent.objects.filter(action="slot.drift_reference", target="det").count() == 1

        send(worker, rng, mean=0.0, count=60)
        assert drift_after(api, 60)["status"] == "ok"

        reset = api.post(
            "/api/v1/slots/det/drift/reset",
            {"reference_requests": 10},
            content_type="application/json",
        )
        assert reset.status_code == 200, reset.content
        assert reset.json()["status"] == "no data" and reset.json()["reference_requests"] == 10
        audit = AuditEvent.objects.get(action="slot.drift_reset", target="det")
        assert audit.after == {"reference_requests": 10}

        ref = "/api/v1/slots/det/drift/reference"
        bad = [
            ("get", "/api/v1/slots/ghost/drift", None, 404, "ghost"),
            (
                "post",
                "/api/v1/slots/ghost/drift/reference",
                {"inputs": {"x": sample}},
                404,
                "ghost",
            ),
            ("post", ref, {"inputs": "x"}, 422, "inputs"),
            ("post", ref, {}, 422, "inputs"),
            ("post", ref, {"inputs": {"x": sample[:3]}}, 422, "20"),
            ("post", ref, {"inputs": {"z": sample}}, 422, "x"),
            (
                "post",
                "/api/v1/slots/empty/drift/reference",
                {"inputs": {"x": sample}},
                409,
                "empty",
            ),
            ("post", "/api/v1/slots/det/drift/reset", {"reference_requests": "many"}, 422, "many"),
            ("post", "/api/v1/slots/det/drift/reset", {"reference_requests": 0}, 422, "positive"),
        ]
        for method, url, body, status, words in bad:
            if method == "get":
                response = api.get(url)
            else:
                response = api.post(url, body, content_type="application/json")
            assert response.status_code == status, (url, body, response.content)
            assert words in response.json()["detail"], response.json()
        # Nothing of the refused calls was applied or audited.
        assert AuditEvent.objects.filter(action__startswith="slot.drift").count() == 2
        assert api.get("/api/v1/slots/det/drift").json()["reference_requests"] == 10

        reader = make_token(owner, scopes=("read",), name="reader2")
        refused = client.post(
            "/api/v1/slots/det/drift/reset",
            {},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {reader}",
        )
        assert refused.status_code == 403 and "write" in refused.json()["detail"]
        stranger = make_token(other_user, name="stranger")
        refused = client.post(
            "/api/v1/slots/det/drift/reset",
            {},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {stranger}",
        )
        assert refused.status_code == 403 and "owner of the version" in refused.json()["detail"]
        assert AuditEvent.objects.filter(action__startswith="slot.drift").count() == 2


def test_drift_without_a_worker_is_a_503_naming_it(api, det, closed_port_worker):
    response = api.get("/api/v1/slots/det/drift")
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]
