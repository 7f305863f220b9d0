"""Every /api/ answer is JSON with ``detail``, through the real web process (daphne):
bodies over DATA_UPLOAD_MAX_MEMORY_SIZE to JSON routes, unknown /api/ paths. Client
errors are one log line, and the worker status calls add none."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings

from tests.conftest import make_token
from tests.webproc import WebProcess
from tests.workerproc import start_worker, worker_environment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker():
    with start_worker(env={"MODELMGR_RECONCILE_INTERVAL_S": "3600"}) as process:
        process.wait_ready()
        yield process


@pytest.fixture
def web(worker):
    process = WebProcess(env={**worker_environment(), "MODELMGR_WORKER_URL": worker.url})
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
def client(web, owner):
    headers = {"authorization": f"Bearer {make_token(owner)}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=60) as http:
        yield http


def test_bodies_over_the_json_limit_are_a_json_413_and_one_log_line(web, client):
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    for url in ("/api/v1/switch", "/api/v1/models"):
        body = f'{{"name": "{padding}"}}'.encode()
        response = client.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 413, (url, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith("application/json")
        assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
    # A page's form over the limit is still Django's 400 page, logged as one line too.
    client.get("/login/")  # the CSRF cookie: the check then reads the (too big) form
    form = client.post(
        "/login/",
        content=b"username=" + padding.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 400
    logs = web.logs()
    assert "Traceback" not in logs and "RequestDataTooBig" not in logs, logs[-3000:]
    assert "413 POST /api/v1/switch: body of" in logs


def test_unknown_api_paths_are_a_json_404(client):
    for path in ("/api/v1/nowhere", "/api/v1/models/x/versions/1/nothing", "/api/v2/models"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json"), path
        assert path in response.json()["detail"]


def test_a_method_an_api_path_does_not_take_is_a_json_405(client):
    response = client.put("/api/v1/stats", json={})
    assert response.status_code == 405 and "GET" in response.headers["allow"]
    assert response.headers["content-type"].startswith("application/json")
    assert "PUT is not allowed here" in response.json()["detail"]


def test_worker_status_calls_leave_no_log_line(web, client):
    for _ in range(3):
        assert client.get("/api/v1/status").json()["worker"]["reachable"] is True
    assert "HTTP Request:" not in web.logs(), web.logs()[-3000:]
