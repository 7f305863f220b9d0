"""/api/v1/status when the worker is down (the live worker is in test_switch_worker.py)."""

from __future__ import annotations

import pytest

from modelmgr.models import Slot
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db


def test_worker_down_shows_unreachable_and_the_desired_state(api, owner, closed_port_worker):
    version = version_of(owner)
    Slot.objects.create(name="clf", task="classifier", active_version=version)
    response = api.get("/api/v1/status")
    assert response.status_code == 200
    body = response.json()
    assert body["worker"]["reachable"] is False
    assert closed_port_worker in body["worker"]["error"]
    assert body["in_sync"] is None
    assert body["slots"] == [
        {
            "slot": "clf",
            "task": "classifier",
            "desired": {"version_id": version.pk, "ref": "clf@1", "owner": "olivia"},
            "actual": None,
            "error": "",
            "drift": None,
        }
    ]
