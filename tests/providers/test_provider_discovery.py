"""Discovery against a real provider: a second modelmgr worker (tests/providerproc.py)
speaking the OpenAI and Ollama protocols on its serving port."""

from __future__ import annotations

import contextlib
import signal

import pytest

from modelmgr.models import AuditEvent, ModelVersion, Provider, Task
from tests.providers.conftest import allow, register
from tests.workerproc import free_port

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def discover(api, name="lab"):
    return api.post(f"/api/v1/providers/{name}/discover")


@contextlib.contextmanager
def frozen(process):
    """SIGSTOP: the provider accepts connections (the kernel does) and never answers."""
    process.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.proc.send_signal(signal.SIGCONT)


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_discovery_records_provided_versions_idempotently(staff_api, settings, provider, kind):
    allow(settings, provider.serve_port)
    assert register(staff_api, provider, kind=kind).status_code == 201
    first = discover(staff_api)
    assert first.status_code == 200, first.content
    # Both protocols list what the server can load as well as what it serves (a modelmgr
    # worker: its slot and its registry's language-model versions, loaded on demand).
    expected = ["lab-chat@remote", "lab-tiny-llama-1@remote"]
    assert sorted(first.json()["created"]) == expected
    version = ModelVersion.objects.select_related("model").get(
        provider__name="lab", provider_model="chat"
    )
    assert version.model.task == Task.LLM
    assert version.status == "available" and version.framework == "provider"
    assert not version.files.exists() and version.size_bytes == 0

    again = discover(staff_api)
    assert again.status_code == 200
    assert again.json()["created"] == []
    assert {m["outcome"] for m in again.json()["models"]} == {"existing"}
    assert sorted(m["ref"] for m in again.json()["models"]) == expected
    assert ModelVersion.objects.filter(provider__name="lab").count() == len(expected)
    shown = staff_api.get("/api/v1/providers/lab").json()
    assert sorted(m["ref"] for m in shown["models"]) == expected
    assert shown["discovered_at"] and not shown["discovery_error"]


def test_wrong_key_is_a_502_naming_the_key_and_loses_nothing(staff_api, settings, provider):
    allow(settings, provider.serve_port)
    register(staff_api, provider, key="mm_not-a-token")
    response = discover(staff_api)
    assert response.status_code == 502
    assert "refused the API key (401" in response.json()["detail"]
    assert not ModelVersion.objects.exists()
    row = Provider.objects.get(name="lab")
    assert "API key" in row.discovery_error
    assert AuditEvent.objects.filter(action="provider.discover", outcome="error").exists()
    # The right key afterwards: discovered, the error cleared.
    staff_api.patch(
        "/api/v1/providers/lab", {"api_key": provider.home.token}, content_type="application/json"
    )
    assert discover(staff_api).status_code == 200
    assert Provider.objects.get(name="lab").discovery_error == ""


def test_provider_down_is_a_502_and_keeps_what_was_discovered(staff_api, settings, provider):
    allow(settings, provider.serve_port)
    register(staff_api, provider)
    assert discover(staff_api).status_code == 200
    dead = free_port()
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS.append(f"127.0.0.1:{dead}")
    staff_api.patch(
        "/api/v1/providers/lab",
        {"base_url": f"http://127.0.0.1:{dead}/v1"},
        content_type="application/json",
    )
    response = discover(staff_api)
    assert response.status_code == 502
    assert "unreachable" in response.json()["detail"]
    assert ModelVersion.objects.filter(provider__name="lab").count() == 2


def test_slow_provider_is_a_504(staff_api, settings, provider):
    allow(settings, provider.serve_port)
    settings.MODELMGR_PROVIDER_TIMEOUT_S = 1.0
    register(staff_api, provider)
    with frozen(provider):
        response = discover(staff_api)
    assert response.status_code == 504
    assert "did not answer within 1 s" in response.json()["detail"]
    assert not ModelVersion.objects.exists()


def test_refused_host_at_discovery_time_is_a_422(staff_api, settings, provider):
    allow(settings, provider.serve_port)
    register(staff_api, provider)
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []  # the rules changed since
    response = discover(staff_api)
    assert response.status_code == 422
    assert "loopback" in response.json()["detail"]
