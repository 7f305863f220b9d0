"""Allowing a private host for imports opens one port of it, never modelmgr's own.

With a bare ``127.0.0.1`` allowed (for a local mirror), a user could import the
worker's private API (``http://127.0.0.1:8001/status``) as a model file.
"""

from __future__ import annotations

import pytest

from modelmgr.imports.netguard import ImportRefused, guard_url
from modelmgr.models import DownloadJob
from tests.conftest import make_token
from tests.integrity.rawhttp import fetch
from tests.webproc import WebProcess
from tests.workerproc import worker_environment


@pytest.fixture
def guard(settings):
    settings.MODELMGR_IMPORT_ALLOWED_HOSTS = []
    settings.MODELMGR_IMPORT_ALLOW_PRIVATE = False
    settings.MODELMGR_WEB_PORT = 8000
    settings.MODELMGR_WORKER_URL = "http://127.0.0.1:8001"
    settings.MODELMGR_WORKER_PORT = 8001
    return settings


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["127.0.0.1:9000"], "http://127.0.0.1:9000/model.onnx"),
        (["127.0.0.1"], "http://127.0.0.1/model.onnx"),
        (["127.0.0.1"], "https://127.0.0.1/model.onnx"),
        (["127.0.0.1:*"], "http://127.0.0.1:9000/model.onnx"),
        (["[::1]:9000"], "http://[::1]:9000/model.onnx"),
        (["::1"], "http://[::1]/model.onnx"),
        (["127.0.0.0/8:9000"], "http://127.0.0.2:9000/model.onnx"),
    ],
)
def test_an_allowed_private_entry_opens_its_port(guard, entries, url):
    guard.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = entries
    assert guard_url(url).url.port in (None, 9000)


@pytest.mark.parametrize(
    ("entries", "url", "problem"),
    [
        (["127.0.0.1"], "http://127.0.0.1:9000/x", "127.0.0.1 port 9000 are refused"),
        (["127.0.0.1:9000"], "http://127.0.0.1:9001/x", "127.0.0.1 port 9001 are refused"),
        (["127.0.0.1:9000"], "http://127.0.0.1/x", "127.0.0.1 port 80 are refused"),
        (["127.0.0.1"], "http://127.0.0.1:8001/status", "the inference worker listens"),
        (["127.0.0.1:*"], "http://127.0.0.1:8001/status", "the inference worker listens"),
        (["127.0.0.1:8001"], "http://127.0.0.1:8001/events", "the inference worker listens"),
        (["127.0.0.1:*"], "http://127.0.0.1:8000/api/v1/models", "the web process listens"),
    ],
)
def test_other_ports_and_modelmgrs_own_are_refused(guard, entries, url, problem):
    guard.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = entries
    with pytest.raises(ImportRefused) as caught:
        guard_url(url)
    assert problem in caught.value.detail


def test_own_ports_stay_refused_even_when_every_private_address_is_allowed(guard):
    guard.MODELMGR_IMPORT_ALLOW_PRIVATE = True
    guard.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []
    with pytest.raises(ImportRefused, match="modelmgr's own ports are never importable"):
        guard_url("http://10.0.0.5:8001/status")
    assert guard_url("http://10.0.0.5:9000/model.onnx").address.exploded == "10.0.0.5"


@pytest.mark.django_db
def test_a_user_cannot_import_the_workers_private_api(api, guard):
    guard.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    response = api.post(
        "/api/v1/imports",
        {"url": "http://127.0.0.1:8001/status", "model": "stolen"},
        content_type="application/json",
    )
    assert response.status_code == 422
    assert "port 8001 is where the inference worker listens" in response.json()["detail"]
    assert DownloadJob.objects.count() == 0


@pytest.fixture
def web(transactional_db):
    env = {
        **worker_environment(),
        "MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1:*",
        "MODELMGR_IMPORT_RUNNER": "false",
    }
    process = WebProcess(env=env).start()
    try:
        yield process
    finally:
        process.stop()


def test_the_running_web_process_refuses_imports_from_its_own_port(web, owner):
    token = make_token(owner)
    answer = fetch(
        web.port,
        "/api/v1/imports",
        token,
        timeout=30,
        method="POST",
        json={"url": f"http://127.0.0.1:{web.port}/api/v1/openapi.json", "model": "self"},
    )
    assert answer.status == 422, answer.body
    assert f"port {web.port} is where the web process listens" in answer.json()["detail"]
