"""Provided versions (no files) on the pages, the API and the admin: shown, never a 500."""

from __future__ import annotations

import pytest

from modelmgr.models import Framework, ModelVersion, Provider, RegisteredModel, Slot

pytestmark = pytest.mark.django_db


@pytest.fixture
def provided(staff, closed_port_worker):
    provider = Provider.objects.create(
        name="lab", kind="openai", base_url="http://gpu-box:8000/v1", api_key="k", owner=staff
    )
    model = RegisteredModel.objects.create(
        owner=staff, name="lab-chat", task="llm", framework=Framework.PROVIDER
    )
    version = ModelVersion.objects.create(
        model=model,
        version="remote",
        status="available",
        framework=Framework.PROVIDER,
        provider=provider,
        provider_model="chat",
        metadata={"provider_listed": True, "context_length": 4096},
    )
    Slot.objects.create(name="llm", task="llm", active_version=version)
    return version


@pytest.mark.parametrize(
    "url",
    [
        "/models",
        "/models/lab-chat",
        "/settings",
        "/status",
        "/api/v1/models/lab-chat/versions/remote",
        "/api/v1/models/lab-chat/versions",
        "/api/v1/slots/llm",
        "/admin/modelmgr/modelversion/",
        "/admin/modelmgr/provider/",
    ],
)
def test_pages_show_a_provided_version(client, staff, provided, url):
    client.force_login(staff)
    response = client.get(url)
    assert response.status_code == 200, response.content.decode()[-3000:]


def test_version_api_marks_it_provided(client, staff, provided):
    client.force_login(staff)
    body = client.get("/api/v1/models/lab-chat/versions/remote").json()
    assert body["provider"] == "lab" and body["provider_model"] == "chat"
    assert body["files"] == [] and body["framework"] == "provider"


def test_admin_version_page_names_its_provider(client, staff, provided):
    client.force_login(staff)
    page = client.get(f"/admin/modelmgr/modelversion/{provided.pk}/change/")
    assert page.status_code == 200
    assert "lab" in page.content.decode() and "chat" in page.content.decode()


def test_recommend_ranks_provided_versions_without_failing(client, staff, provided):
    client.force_login(staff)
    response = client.post(
        "/api/v1/recommend",
        {"task": "llm", "available_vram_gb": 8},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def test_uploads_cannot_claim_the_provider_framework(client, staff):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(staff)
    response = client.post(
        "/api/v1/models/x/versions",
        {"file": SimpleUploadedFile("m.onnx", b"not really"), "framework": "provider"},
    )
    assert response.status_code in (400, 422), response.content
    assert "provider" in response.json()["detail"]
