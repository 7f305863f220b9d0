"""/api/v1/slots: list, create, show, change, delete; rollback refusals."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.conftest import make_token
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_api(client, staff):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff)}"
    return client


def test_staff_creates_and_reads_a_slot(staff_api):
    response = staff_api.post(
        "/api/v1/slots",
        {
            "name": "detector",
            "task": "detector",
            "description": "front camera",
            "contract": {
                "inputs": [{"name": "image", "shape": [None, 3, 640, 640], "dtype": "float32"}]
            },
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["task"], body["active"], body["previous"]) == (
        "detector",
        "detector",
        None,
        None,
    )
    assert body["contract"]["inputs"][0]["shape"] == [None, 3, 640, 640]
    assert staff_api.get("/api/v1/slots/detector").json()["description"] == "front camera"
    assert [s["name"] for s in staff_api.get("/api/v1/slots").json()] == ["detector"]
    assert AuditEvent.objects.filter(action="slot.create", target="detector").exists()


def test_slot_list_shows_active_and_previous_versions(api, owner):
    v1, v2 = version_of(owner, version="1"), version_of(owner, version="2")
    Slot.objects.create(name="clf", task="classifier", active_version=v2, previous_version=v1)
    body = api.get("/api/v1/slots").json()[0]
    assert body["active"] == {"id": v2.pk, "ref": "clf@2", "owner": "olivia", "status": "available"}
    assert body["previous"]["ref"] == "clf@1"


def test_ordinary_user_may_not_create_a_slot(api):
    response = api.post("/api/v1/slots", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "only staff" in response.json()["detail"]
    assert not Slot.objects.exists()


def test_malformed_contract_is_422_and_creates_nothing(staff_api):
    response = staff_api.post(
        "/api/v1/slots",
        {"name": "x", "contract": {"inputs": [{}]}},
        content_type="application/json",
    )
    assert response.status_code == 422
    assert "contract.inputs[0] needs a non-empty 'name'" in response.json()["detail"]
    assert not Slot.objects.exists() and not AuditEvent.objects.exists()


def test_duplicate_slot_is_409(staff_api):
    Slot.objects.create(name="x")
    response = staff_api.post("/api/v1/slots", {"name": "x"}, content_type="application/json")
    assert response.status_code == 409


def test_unknown_slot_is_404(api):
    response = api.get("/api/v1/slots/nope")
    assert response.status_code == 404
    assert response.json()["detail"] == "there is no slot named 'nope'"


def test_patch_changes_the_contract_and_empty_object_removes_it(staff_api):
    Slot.objects.create(name="x")
    response = staff_api.patch(
        "/api/v1/slots/x",
        {"contract": {"inputs": [{"name": "a"}]}},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["contract"]["inputs"][0]["name"] == "a"
    response = staff_api.patch("/api/v1/slots/x", {"contract": {}}, content_type="application/json")
    assert response.json()["contract"] == {}


def test_patch_the_active_version_would_not_fit_is_409(staff_api, owner):
    Slot.objects.create(name="clf", task="classifier", active_version=version_of(owner))
    response = staff_api.patch(
        "/api/v1/slots/clf", {"task": "detector"}, content_type="application/json"
    )
    assert response.status_code == 409
    assert "clf@1 is a classifier model" in response.json()["detail"]
    assert Slot.objects.get(name="clf").task == "classifier"


def test_delete_of_a_serving_slot_is_409_and_of_an_idle_one_204(staff_api, owner):
    Slot.objects.create(name="clf", task="classifier", active_version=version_of(owner))
    Slot.objects.create(name="idle")
    assert staff_api.delete("/api/v1/slots/clf").status_code == 409
    assert staff_api.delete("/api/v1/slots/idle").status_code == 204
    assert list(Slot.objects.values_list("name", flat=True)) == ["clf"]


def test_rollback_without_previous_is_409_naming_the_slot(api, owner):
    Slot.objects.create(name="clf", task="classifier", active_version=version_of(owner))
    response = api.post("/api/v1/slots/clf/rollback")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "slot clf has no previous version to roll back to",
        "slots": {"clf": "no previous version"},
    }


def test_read_only_token_may_list_but_not_change_slots(client, owner, read_only_token):
    Slot.objects.create(name="x")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {read_only_token}"
    assert client.get("/api/v1/slots").status_code == 200
    assert client.post("/api/v1/slots/x/rollback").status_code == 403
