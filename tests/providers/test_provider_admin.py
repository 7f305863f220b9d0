"""The Django admin for providers: the same checks and audit as the API, the key
write-only, the discover action reporting a provider that is down."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, Provider
from tests.workerproc import free_port

pytestmark = pytest.mark.django_db
KEY = "sk-admin-0123456789abcdef"
ADD = "/admin/modelmgr/provider/add/"


def form(url: str, **extra) -> dict:
    return {"name": "lab", "kind": "openai", "base_url": url, "api_key": KEY, **extra}


def test_admin_registers_a_provider_and_never_renders_its_key(admin_client, settings):
    port = free_port()
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{port}"]
    response = admin_client.post(ADD, form(f"http://127.0.0.1:{port}"))
    assert response.status_code == 302, response.content.decode()[-2000:]
    provider = Provider.objects.get(name="lab")
    assert provider.api_key == KEY and provider.base_url.endswith("/v1")
    assert AuditEvent.objects.filter(action="provider.create").exists()
    page = admin_client.get(f"/admin/modelmgr/provider/{provider.pk}/change/")
    assert page.status_code == 200 and KEY not in page.content.decode()
    listing = admin_client.get("/admin/modelmgr/provider/")
    assert KEY not in listing.content.decode() and "sk-\u2026cdef" in listing.content.decode()
    # Blank keeps the key; the discover action names the provider that is down.
    kept = admin_client.post(
        f"/admin/modelmgr/provider/{provider.pk}/change/",
        {"base_url": provider.base_url, "api_key": "", "description": "lab box"},
    )
    assert kept.status_code == 302
    assert Provider.objects.get(pk=provider.pk).api_key == KEY
    done = admin_client.post(
        "/admin/modelmgr/provider/",
        {"action": "discover_models", "_selected_action": [provider.pk]},
        follow=True,
    )
    text = done.content.decode()
    assert "Not discovered" in text and "unreachable" in text


def test_admin_form_shows_the_ssrf_refusal(admin_client):
    response = admin_client.post(ADD, form("http://127.0.0.1:11434"))
    assert response.status_code == 200
    assert "loopback" in response.content.decode()
    assert not Provider.objects.exists()


def test_command_adds_lists_and_refuses(admin_user, settings, monkeypatch):
    from io import StringIO

    from django.core.management import CommandError, call_command

    port = free_port()
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = [f"127.0.0.1:{port}"]
    monkeypatch.setenv("LAB_KEY", KEY)
    out = StringIO()
    call_command(
        "provider",
        "add",
        "lab",
        "--kind",
        "ollama",
        "--url",
        f"http://127.0.0.1:{port}",
        "--key-env",
        "LAB_KEY",
        stdout=out,
    )
    assert Provider.objects.get(name="lab").api_key == KEY
    call_command("provider", "list", stdout=out)
    assert KEY not in out.getvalue() and "lab\tollama" in out.getvalue()
    with pytest.raises(CommandError, match="unreachable"):
        call_command("provider", "discover", "lab")
    with pytest.raises(CommandError, match="loopback"):
        call_command("provider", "add", "other", "--kind", "ollama", "--url", "http://127.0.0.1:1")
