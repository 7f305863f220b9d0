"""/api/v1/providers without a provider process: registration, the SSRF rules, the key
never shown back, permissions, delete refused while a slot serves a provided model."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, Framework, ModelVersion, Provider, RegisteredModel, Slot
from tests.conftest import make_token

pytestmark = pytest.mark.django_db

KEY = "sk-test-0123456789abcdef"


def post(api, body):
    return api.post("/api/v1/providers", body, content_type="application/json")


def test_registration_stores_the_key_and_never_shows_it(staff_api, settings):
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:9999"]
    response = post(
        staff_api,
        {"name": "lab", "kind": "openai", "base_url": "http://127.0.0.1:9999", "api_key": KEY},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["base_url"] == "http://127.0.0.1:9999/v1"  # the openai client's base URL
    assert body["has_api_key"] is True
    assert KEY not in response.content.decode()
    assert body["api_key"] == "sk-\u2026cdef"
    assert Provider.objects.get(name="lab").api_key == KEY
    listed = staff_api.get("/api/v1/providers")
    assert KEY not in listed.content.decode()
    event = AuditEvent.objects.get(action="provider.create")
    assert KEY not in str(event.after)


def test_loopback_is_refused_by_default_naming_the_setting(staff_api):
    response = post(
        staff_api, {"name": "lab", "kind": "ollama", "base_url": "http://127.0.0.1:11434"}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "loopback" in detail and "MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS" in detail
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("http://169.254.169.254/v1", 422, "metadata"),
        ("ftp://example.com/v1", 400, "scheme"),
        ("http://user:pw@example.com/v1", 400, "credentials"),
        ("", 400, "base_url is required"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(staff_api, url, status, words):
    response = post(staff_api, {"name": "lab", "kind": "openai", "base_url": url})
    assert response.status_code == status, response.content
    assert words in response.json()["detail"]
    assert not Provider.objects.exists()


def test_allow_list_refuses_other_hosts(staff_api, settings):
    settings.MODELMGR_IMPORT_ALLOWED_HOSTS = ["models.example.com"]
    response = post(
        staff_api, {"name": "lab", "kind": "openai", "base_url": "https://api.example.org/v1"}
    )
    assert response.status_code == 422
    assert "MODELMGR_IMPORT_ALLOWED_HOSTS" in response.json()["detail"]


def test_unknown_kind_and_taken_name(staff_api, settings):
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:9999"]
    response = post(staff_api, {"name": "lab", "kind": "tgi", "base_url": "http://127.0.0.1:9999"})
    assert response.status_code == 422
    assert "kind" in response.json()["detail"]
    body = {"name": "lab", "kind": "ollama", "base_url": "http://127.0.0.1:9999"}
    assert post(staff_api, body).status_code == 201
    again = post(staff_api, body)
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


def test_only_staff_manage_providers(client, owner, settings):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(owner)}"
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:9999"]
    response = post(client, {"name": "lab", "kind": "ollama", "base_url": "http://127.0.0.1:9999"})
    assert response.status_code == 403
    assert "staff" in response.json()["detail"]
    assert client.get("/api/v1/providers").status_code == 403


def test_staff_token_with_write_scope_registers(client, staff, settings):
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:9999"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff, scopes=('read',))}"
    body = {"name": "lab", "kind": "ollama", "base_url": "http://127.0.0.1:9999"}
    refused = post(client, body)
    assert refused.status_code == 403 and "write" in refused.json()["detail"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff, name='admin')}"
    assert post(client, body).status_code == 201


def test_patch_changes_the_key_and_rechecks_the_url(staff_api, settings):
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:9999"]
    post(staff_api, {"name": "lab", "kind": "ollama", "base_url": "http://127.0.0.1:9999"})
    changed = staff_api.patch(
        "/api/v1/providers/lab", {"api_key": KEY}, content_type="application/json"
    )
    assert changed.status_code == 200
    assert changed.json()["has_api_key"] and KEY not in changed.content.decode()
    refused = staff_api.patch(
        "/api/v1/providers/lab",
        {"base_url": "http://127.0.0.1:8001"},
        content_type="application/json",
    )
    assert refused.status_code == 422
    assert Provider.objects.get(name="lab").base_url == "http://127.0.0.1:9999"


def _provided(provider: Provider) -> ModelVersion:
    model = RegisteredModel.objects.create(owner=provider.owner, name="lab-m", task="llm")
    return ModelVersion.objects.create(
        model=model,
        version="remote",
        status="available",
        framework=Framework.PROVIDER,
        provider=provider,
        provider_model="m",
    )


def test_delete_is_refused_while_a_slot_serves_a_provided_model(staff_api, staff, settings):
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:9999"]
    post(staff_api, {"name": "lab", "kind": "ollama", "base_url": "http://127.0.0.1:9999"})
    version = _provided(Provider.objects.get(name="lab"))
    slot = Slot.objects.create(name="llm", task="llm", active_version=version)
    refused = staff_api.delete("/api/v1/providers/lab")
    assert refused.status_code == 409
    assert "llm" in refused.json()["detail"]
    version_refused = staff_api.delete(f"/api/v1/models/{version.model.name}/versions/remote")
    assert version_refused.status_code == 409, version_refused.content
    slot.active_version = None
    slot.save()
    assert staff_api.delete("/api/v1/providers/lab").status_code == 204
    assert not Provider.objects.exists()
    assert not ModelVersion.objects.filter(pk=version.pk).exists()
    assert not RegisteredModel.objects.filter(name="lab-m").exists()
