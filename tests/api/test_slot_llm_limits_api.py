"""PUT /api/v1/slots/{slot}/llm-limits: ranges, defaults, audit; the settings page and
the admin go through the same service."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.conftest import make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_api(client, staff):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff)}"
    return client


def put(api, slot: str, body: dict):
    return api.put(f"/api/v1/slots/{slot}/llm-limits", body, content_type="application/json")


def test_limits_are_set_shown_audited_and_reset_to_the_defaults(staff_api):
    Slot.objects.create(name="chat", task="llm")
    assert staff_api.get("/api/v1/slots/chat").json()["llm_limits"] == {
        "num_parallel": 0,
        "max_queue": None,
    }
    response = put(staff_api, "chat", {"num_parallel": 1, "max_queue": 1})
    assert response.status_code == 200, response.content
    assert response.json()["llm_limits"] == {"num_parallel": 1, "max_queue": 1}
    event = AuditEvent.objects.get(action="slot.llm_limits", target="chat")
    assert event.before == {"num_parallel": 0, "max_queue": None}
    assert event.after == {"num_parallel": 1, "max_queue": 1}
    # A setting left out stays; 0 queue: no one waits; null queue: the default again.
    assert put(staff_api, "chat", {"max_queue": 0}).json()["llm_limits"] == {
        "num_parallel": 1,
        "max_queue": 0,
    }
    assert put(staff_api, "chat", {"num_parallel": 0, "max_queue": None}).json()["llm_limits"] == {
        "num_parallel": 0,
        "max_queue": None,
    }
    # The same values again change nothing and audit nothing.
    put(staff_api, "chat", {"num_parallel": 0})
    assert AuditEvent.objects.filter(action="slot.llm_limits").count() == 3


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"num_parallel": -1}, "num_parallel must be an integer from 0 to 64"),
        ({"num_parallel": 65}, "num_parallel must be an integer from 0 to 64"),
        ({"num_parallel": "2"}, "num_parallel"),
        ({"num_parallel": True}, "num_parallel"),
        ({"num_parallel": 2.5}, "num_parallel"),
        ({"max_queue": -1}, "max_queue must be an integer from 0 to 4096"),
        ({"max_queue": 10_000}, "max_queue"),
        ({"max_queue": [1]}, "max_queue"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(staff_api, body, named):
    Slot.objects.create(name="chat", task="llm", llm_num_parallel=3)
    response = put(staff_api, "chat", body)
    assert response.status_code == 422, response.content
    assert named in response.json()["detail"]
    slot = Slot.objects.get(name="chat")
    assert (slot.llm_num_parallel, slot.llm_max_queue) == (3, None)
    assert not AuditEvent.objects.filter(action="slot.llm_limits").exists()


def test_unknown_slot_is_404_and_a_non_staff_user_is_refused(client, owner, staff_api):
    response = put(staff_api, "nope", {"num_parallel": 1})
    assert response.status_code == 404 and "nope" in response.json()["detail"]
    Slot.objects.create(name="chat", task="llm")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(owner, name='mine')}"
    response = put(client, "chat", {"num_parallel": 1})
    assert response.status_code == 403 and response.json()["detail"]
    assert Slot.objects.get(name="chat").llm_num_parallel == 0


def test_the_settings_page_sets_the_limits_of_an_llm_card(client, staff):
    Slot.objects.create(name="chat", task="llm")
    Slot.objects.create(name="det", task="detector")
    client.force_login(staff)
    page = client.get("/settings").content.decode()
    assert 'id="llm-limits-chat"' in page and 'id="llm-limits-det"' not in page
    response = client.post(
        "/settings/chat/llm-limits",
        {"llm-parallel-chat": "1", "llm-queue-chat": "1"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "Generation limits on chat: 1 at once, 1 may wait" in response.content.decode()
    slot = Slot.objects.get(name="chat")
    assert (slot.llm_num_parallel, slot.llm_max_queue) == (1, 1)
    response = client.post(
        "/settings/chat/llm-limits",
        {"llm-parallel-chat": "", "llm-queue-chat": "many"},
        HTTP_HX_REQUEST="true",
    )
    assert "max_queue must be an integer" in response.content.decode()
    assert Slot.objects.get(name="chat").llm_max_queue == 1
    client.post(
        "/settings/chat/llm-limits",
        {"llm-parallel-chat": "", "llm-queue-chat": ""},
        HTTP_HX_REQUEST="true",
    )
    slot = Slot.objects.get(name="chat")
    assert (slot.llm_num_parallel, slot.llm_max_queue) == (0, None)
    assert AuditEvent.objects.filter(action="slot.llm_limits").count() == 2
