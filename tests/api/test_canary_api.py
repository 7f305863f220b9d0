"""Bad canary/shadow requests: a 4xx naming the problem, nothing changed, a refusal never
reaching the worker. Per-arm statistics while the worker is down."""

from __future__ import annotations

import json

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db
CONTRACT = {"inputs": [{"name": "x", "shape": [None, 4], "dtype": "float32"}]}
OTHER = {
    "inputs": [{"name": "image", "shape": ["batch", 3], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
}


@pytest.fixture
def slot(owner, closed_port_worker):
    """clf serving clf@1, clf@2 fitting its contract, misfit@1 not."""
    v1 = version_of(owner, "clf", "1")
    version_of(owner, "clf", "2")
    version_of(owner, "misfit", "1", signature=OTHER)
    return Slot.objects.create(name="clf", active_version=v1, task="classifier", contract=CONTRACT)


def post(api, path: str, body=None):
    data = body if isinstance(body, str) else json.dumps(body or {})
    return api.post(path, data, content_type="application/json")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"version": "clf@2", "share": 1.5}, "share must be from 0 to 1, got 1.5"),
        ({"version": "clf@2", "share": -0.1}, "share must be from 0 to 1, got -0.1"),
        ({"version": "clf@2", "share": "lots"}, "share must be a number from 0 to 1"),
        ({"version": "clf@2", "share": True}, "share must be a number from 0 to 1"),
        ({"version": 7, "share": 0.2}, "expected a 'name@version' string, got 7"),
    ],
)
def test_a_bad_share_or_version_is_422_naming_it(api, slot, body, expected):
    response = post(api, "/api/v1/slots/clf/canary", body)
    assert response.status_code == 422, response.content
    assert expected in response.json()["detail"]
    assert Slot.objects.get(name="clf").canary_version is None


def test_a_body_without_a_share_is_422(api, slot):
    response = post(api, "/api/v1/slots/clf/canary", {"version": "clf@2"})
    assert response.status_code == 422 and "share" in json.dumps(response.json()["detail"])


def test_an_unknown_slot_or_version_is_404(api, slot):
    unknown_slot = post(api, "/api/v1/slots/nope/canary", {"version": "clf@2", "share": 0.1})
    assert unknown_slot.status_code == 404
    assert "no slot named 'nope'" in unknown_slot.json()["detail"]
    assert post(api, "/api/v1/slots/nope/promote").status_code == 404
    assert api.get("/api/v1/slots/nope/arms").status_code == 404
    unknown_version = post(api, "/api/v1/slots/clf/shadow", {"version": "clf@9"})
    assert unknown_version.status_code == 404 and "clf@9" in unknown_version.json()["detail"]


def test_a_version_outside_the_slots_contract_is_409_for_canary_and_shadow(api, slot):
    for path, body in (
        ("canary", {"version": "misfit@1", "share": 0.2}),
        ("shadow", {"version": "misfit@1"}),
    ):
        response = post(api, f"/api/v1/slots/clf/{path}", body)
        assert response.status_code == 409, response.content
        assert "misfit@1 does not fit slot clf" in response.json()["detail"]
    row = Slot.objects.get(name="clf")
    assert row.canary_version is None and row.shadow_version is None


def test_nothing_to_promote_or_abort_and_the_active_version_as_canary_are_409(api, slot):
    promote = post(api, "/api/v1/slots/clf/promote")
    assert promote.status_code == 409 and "no canary to promote" in promote.json()["detail"]
    abort = post(api, "/api/v1/slots/clf/abort")
    assert abort.status_code == 409 and "no canary or shadow" in abort.json()["detail"]
    same = post(api, "/api/v1/slots/clf/canary", {"version": "clf@1", "share": 0.5})
    assert same.status_code == 409 and "already the slot's active version" in same.json()["detail"]


def test_a_slot_serving_nothing_takes_no_canary(api, slot):
    Slot.objects.filter(name="clf").update(active_version=None)
    response = post(api, "/api/v1/slots/clf/canary", {"version": "clf@2", "share": 0.5})
    assert response.status_code == 409 and "serves nothing" in response.json()["detail"]


def test_a_read_only_token_may_not_set_a_canary(client, read_only_token, slot):
    response = client.post(
        "/api/v1/slots/clf/canary",
        json.dumps({"version": "clf@2", "share": 0.5}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {read_only_token}",
    )
    assert response.status_code == 403


def test_a_worker_that_is_down_changes_nothing_and_is_audited(api, slot):
    response = post(api, "/api/v1/slots/clf/canary", {"version": "clf@2", "share": 0.5})
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]
    assert Slot.objects.get(name="clf").canary_version is None
    audit = AuditEvent.objects.get(action="slot.canary")
    assert audit.outcome == "error" and audit.after["canary"] == "clf@2"


def test_arms_while_the_worker_is_down_show_the_database_arms_without_figures(api, slot):
    Slot.objects.filter(name="clf").update(
        canary_version=slot.active_version.model.versions.get(version="2"), canary_share=0.3
    )
    body = api.get("/api/v1/slots/clf/arms").json()
    assert body["worker"]["reachable"] is False and body["worker"]["detail"]
    assert set(body["arms"]) == {"primary", "canary"}
    canary = body["arms"]["canary"]
    assert canary["ref"] == "clf@2" and canary["share"] == 0.3
    assert canary["serving"] is False and canary["requests"] == 0


def test_a_language_model_slot_takes_no_canary(api, slot):
    Slot.objects.filter(name="clf").update(task="llm")
    response = post(api, "/api/v1/slots/clf/canary", {"version": "clf@2", "share": 0.5})
    assert response.status_code == 409 and "tensor models only" in response.json()["detail"]
