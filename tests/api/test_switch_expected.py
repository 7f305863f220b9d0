"""Lost updates: a switch or rollback carries the version its caller saw ("expected"),
and one that no longer matches is refused with 409 naming who changed the slot.

Against a real worker (the other operator's switch must really happen); the refusals
themselves are decided before the worker is asked.
"""

from __future__ import annotations

import pytest
from django.test import Client

from modelmgr.models import AuditEvent, Slot
from tests.conftest import make_token
from tests.deploy.live import live_worker, served_by, switch
from tests.inference.support import make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def versions(owner, model_files, tmp_path):
    """Slots clf (clf@1) and pol (pol@1); clf@2, clf@3 and pol@2 ready."""
    made = {
        f"{name}{v}": onnx_version(
            owner, model_files, tmp_path, name=name, version=str(v), seed=seed
        )
        for seed, (name, v) in enumerate(
            [("clf", 1), ("clf", 2), ("clf", 3), ("pol", 1), ("pol", 2)]
        )
    }
    make_slot("clf", made["clf1"], task="classifier")
    make_slot("pol", made["pol1"], task="classifier")
    return made


@pytest.fixture
def bob(staff):
    """A second operator: stella's robot named "bob-ci"."""
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff, name='bob-ci')}"
    return client


def test_a_stale_expected_version_is_refused_naming_who_changed_the_slot(
    api, bob, settings, versions
):
    with live_worker(settings):
        assert switch(bob, {"clf": "clf@2"}).status_code == 200
        # olivia saw clf@1 and asks for clf@3: her view is stale.
        response = switch(api, {"slots": {"clf": "clf@3"}, "expected": {"clf": "clf@1"}})
        assert response.status_code == 409, response.content
        body = response.json()
        cause = body["slots"]["clf"]
        assert "serves clf@2, not clf@1" in cause
        assert "changed by stella (token bob-ci) at " in cause and " UTC" in cause
        assert cause in body["detail"]
        assert served_by(api, "clf") == "clf@2"
        assert Slot.objects.get(name="clf").active_version_id == versions["clf2"].pk
        refused = AuditEvent.objects.get(outcome="refused")
        assert refused.action == "slot.switch"
        assert refused.actor_label == "olivia (token robot)"
        assert refused.before == {"clf": "clf@2"} and refused.after == {"clf": "clf@3"}
        assert "changed by stella" in refused.error


def test_a_matching_expected_version_switches_and_other_slots_are_untouched(
    api, bob, settings, versions
):
    with live_worker(settings):
        assert switch(bob, {"clf": "clf@2"}).status_code == 200
        response = switch(
            api, {"slots": {"pol": "olivia/pol@2"}, "expected": {"pol": "olivia/pol@1"}}
        )
        assert response.status_code == 200, response.content
        assert served_by(api, "pol") == "pol@2"
        assert served_by(api, "clf") == "clf@2"  # not part of the switch: not reverted


def test_expected_must_name_slots_of_the_switch(api, versions):
    response = switch(api, {"slots": {"clf": "clf@2"}, "expected": {"pol": "pol@1"}})
    assert response.status_code == 422
    assert response.json()["slots"] == {"pol": "named in expected but not part of the switch"}
    unknown = switch(api, {"slots": {"clf": "clf@2"}, "expect": {"clf": "clf@1"}})
    assert unknown.status_code == 422 and "expect" in unknown.json()["detail"]


def test_rollback_to_a_version_no_longer_previous_is_refused(api, bob, settings, versions):
    with live_worker(settings):
        assert switch(api, {"clf": "clf@2"}).status_code == 200
        # olivia's page now offers "Roll back to clf@1"; meanwhile bob moves on to clf@3.
        assert switch(bob, {"clf": "clf@3"}).status_code == 200
        response = api.post(
            "/api/v1/slots/clf/rollback", {"to": "clf@1"}, content_type="application/json"
        )
        assert response.status_code == 409, response.content
        cause = response.json()["slots"]["clf"]
        assert "can no longer roll back to clf@1: its previous version is clf@2" in cause
        assert "changed by stella (token bob-ci)" in cause
        assert served_by(api, "clf") == "clf@3"
        assert AuditEvent.objects.filter(action="slot.rollback", outcome="refused").count() == 1

        stale = api.post(
            "/api/v1/slots/clf/rollback",
            {"to": "clf@2", "expected": "clf@2"},
            content_type="application/json",
        )
        assert stale.status_code == 409
        assert "serves clf@3, not clf@2" in stale.json()["slots"]["clf"]

        done = api.post(
            "/api/v1/slots/clf/rollback",
            {"to": "clf@2", "expected": "clf@3"},
            content_type="application/json",
        )
        assert done.status_code == 200, done.content
        assert served_by(api, "clf") == "clf@2"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"nope": "clf@2"}, 404),
        ({"clf": "clf@9"}, 404),
        ({"clf": 3}, 422),
    ],
)
def test_refused_switches_leave_a_refused_audit_row(api, versions, body, status):
    response = switch(api, body)
    assert response.status_code == status
    row = AuditEvent.objects.get()
    assert (row.action, row.outcome) == ("slot.switch", "refused")
    assert row.actor_label == "olivia (token robot)"
    assert row.error == response.json()["detail"]


def test_refused_rollbacks_leave_a_refused_audit_row(api, versions):
    assert api.post("/api/v1/slots/nope/rollback").status_code == 404
    assert api.post("/api/v1/slots/clf/rollback").status_code == 409  # no previous version
    rows = AuditEvent.objects.order_by("id")
    assert [(r.action, r.outcome, r.target) for r in rows] == [
        ("slot.rollback", "refused", "nope"),
        ("slot.rollback", "refused", "clf"),
    ]
    assert "no previous version" in rows[1].error


def test_a_stale_expected_version_is_refused_before_the_stream_starts(api, versions):
    response = api.post(
        "/api/v1/switch",
        {"slots": {"clf": "clf@2"}, "expected": {"clf": "clf@3"}},
        content_type="application/json",
        HTTP_ACCEPT="application/x-ndjson",
    )
    assert response.status_code == 409
    assert "serves clf@1, not clf@3 as expected" in response.json()["slots"]["clf"]
