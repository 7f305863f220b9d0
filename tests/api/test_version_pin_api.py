"""PATCH /api/v1/models/{name}/versions/{version} {"pinned": ...}: keep a version loaded."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, ModelVersion
from tests.conftest import make_token
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/det/versions/1"


@pytest.fixture
def version(owner):
    return make_version(make_model(owner, "det"), "1")


def patch(client, body: dict, **headers):
    return client.patch(URL, body, content_type="application/json", **headers)


def test_pinned_is_read_and_set_by_patch_with_an_audit_row(api, version, closed_port_worker):
    assert api.get(URL).json()["pinned"] is False
    response = patch(api, {"pinned": True})
    assert response.status_code == 200, response.content
    assert response.json()["pinned"] is True and api.get(URL).json()["pinned"] is True
    event = AuditEvent.objects.get(action="version.pin")
    assert event.actor_label == "olivia (token robot)"
    assert event.before["pinned"] is False and event.after["pinned"] is True

    response = patch(api, {"pinned": False})
    assert response.status_code == 200 and response.json()["pinned"] is False
    assert AuditEvent.objects.filter(action="version.unpin").count() == 1


def test_pinning_an_archived_version_is_409_and_changes_nothing(api, version):
    ModelVersion.objects.filter(pk=version.pk).update(status="archived")
    response = patch(api, {"pinned": True, "description": "keep it"})
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "det@1 cannot be pinned: its status is archived; only available versions can be kept loaded"
    )
    version.refresh_from_db()
    assert version.pinned is False and version.description == ""
    assert not AuditEvent.objects.exists()


def test_pinned_must_be_a_boolean(api, version):
    assert patch(api, {"pinned": "sometimes"}).status_code == 422


def test_a_read_only_token_cannot_pin(client, version, read_only_token):
    response = patch(client, {"pinned": True}, HTTP_AUTHORIZATION=f"Bearer {read_only_token}")
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.pinned is False


def test_another_user_cannot_pin_my_version(client, version, other_user):
    response = patch(
        client, {"pinned": True}, HTTP_AUTHORIZATION=f"Bearer {make_token(other_user)}"
    )
    assert response.status_code == 404
    version.refresh_from_db()
    assert version.pinned is False


def test_the_openapi_schema_documents_pinned(api):
    schema = api.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert "pinned" in schema["VersionPatch"]["properties"]
    assert "pinned" in schema["VersionOut"]["required"]
