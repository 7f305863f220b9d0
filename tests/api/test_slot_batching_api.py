"""PUT /api/v1/slots/{slot}/batching: ranges, the dynamic batch dimension, audit."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.conftest import make_token
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db
DYNAMIC = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": [None, 2], "dtype": "float32"}],
}
FIXED = {
    "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32"}],
}


@pytest.fixture
def staff_api(client, staff):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff)}"
    return client


def put(api, slot: str, body: dict):
    return api.put(f"/api/v1/slots/{slot}/batching", body, content_type="application/json")


def test_batching_is_set_shown_and_audited(staff_api, owner):
    Slot.objects.create(name="clf", active_version=version_of(owner, signature=DYNAMIC))
    response = put(
        staff_api,
        "clf",
        {"max_batch_size": 16, "max_queue_delay_us": 2000, "preferred_batch_sizes": [8, 4]},
    )
    assert response.status_code == 200, response.content
    wanted = {"max_batch_size": 16, "max_queue_delay_us": 2000, "preferred_batch_sizes": [4, 8]}
    assert response.json()["batching"] == wanted
    assert staff_api.get("/api/v1/slots/clf").json()["batching"] == wanted
    event = AuditEvent.objects.get(action="slot.batching", target="clf")
    assert event.before["max_batch_size"] == 0 and event.after == wanted
    # Settings left out stay; 0 turns batching off.
    assert put(staff_api, "clf", {"max_batch_size": 0}).json()["batching"] == {
        **wanted,
        "max_batch_size": 0,
        "preferred_batch_sizes": [],
    }


def test_a_fixed_first_dimension_is_refused_with_the_reason(staff_api, owner):
    Slot.objects.create(name="clf", active_version=version_of(owner, signature=FIXED))
    response = put(staff_api, "clf", {"max_batch_size": 8})
    assert response.status_code == 409
    assert "input 'x' has a fixed first dimension (1)" in response.json()["detail"]
    assert Slot.objects.get(name="clf").max_batch_size == 0


def test_a_signature_without_shapes_or_a_slot_without_version_is_refused(staff_api, owner):
    unknown = {"inputs": [{"name": "input", "shape": None, "dtype": None}], "outputs": []}
    Slot.objects.create(name="ts", active_version=version_of(owner, signature=unknown))
    Slot.objects.create(name="idle")
    response = put(staff_api, "ts", {"max_batch_size": 8})
    assert response.status_code == 409
    assert "does not record its inputs and outputs" in response.json()["detail"]
    response = put(staff_api, "idle", {"max_batch_size": 8})
    assert response.status_code == 409 and "serves no version" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"max_batch_size": -1}, "max_batch_size must be an integer from 0 to 1024"),
        ({"max_batch_size": 5000}, "max_batch_size"),
        ({"max_batch_size": "8"}, "max_batch_size"),
        ({"max_batch_size": 8, "max_queue_delay_us": 10_000_000}, "max_queue_delay_us"),
        ({"max_batch_size": 8, "preferred_batch_sizes": [16]}, "preferred batch size"),
        ({"max_batch_size": 8, "preferred_batch_sizes": "4"}, "preferred_batch_sizes"),
    ],
)
def test_out_of_range_values_are_422_naming_the_setting(staff_api, owner, body, named):
    Slot.objects.create(name="clf", active_version=version_of(owner, signature=DYNAMIC))
    response = put(staff_api, "clf", body)
    assert response.status_code == 422
    assert named in response.json()["detail"]
    assert Slot.objects.get(name="clf").max_batch_size == 0


def test_ordinary_users_may_not_change_batching(api, owner):
    Slot.objects.create(name="clf", active_version=version_of(owner, signature=DYNAMIC))
    response = put(api, "clf", {"max_batch_size": 8})
    assert response.status_code == 403
