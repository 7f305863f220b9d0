"""Deleting or archiving a version while a switch loads it, against the real worker.

Without the switch lock the delete succeeded at once, the switch then failed with a raw
"FOREIGN KEY constraint failed" as a 503, and the worker served the deleted version for
a moment. Now the change waits for the switch: refused (409) when the switch outlasts
MODELMGR_SWITCH_LOCK_TIMEOUT_S, or judged after it (the version is then in use).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test import Client

from modelmgr.models import AuditEvent, ModelVersion, Slot
from tests.conftest import make_token
from tests.deploy.live import live_worker, served_by, switch
from tests.inference.support import eventually, gate_version, make_slot, onnx_version, waiting_loads

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SLOW = "/api/v1/models/slow/versions/1"


@pytest.fixture
def slot(owner, model_files, tmp_path):
    v1 = onnx_version(owner, model_files, tmp_path, name="clf", version="1", seed=0)
    make_slot("clf", v1, task="classifier")
    return v1


@pytest.fixture
def other(owner):
    """A second client of the same owner: the first one is busy with the switch."""
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(owner, name='other')}"
    return client


def _switch_in_background(api, body: dict) -> tuple[threading.Thread, list]:
    responses: list = []

    def call():
        try:
            responses.append(switch(api, body))
        finally:
            connections.close_all()

    thread = threading.Thread(target=call)
    thread.start()
    return thread, responses


def test_a_delete_during_a_switch_is_refused_and_the_switch_completes(
    api, other, settings, owner, slot, tmp_path
):
    gate = tmp_path / "held"
    slow = gate_version(owner, name="slow", version="1", gate=gate)
    with live_worker(settings):
        caller, responses = _switch_in_background(api, {"clf": "slow@1"})
        eventually(lambda: waiting_loads(gate), what="the load to start")
        settings.MODELMGR_SWITCH_LOCK_TIMEOUT_S = 0.5
        deleted = other.delete(SLOW)
        archived = other.patch(SLOW, {"status": "archived"}, content_type="application/json")
        gate.touch()
        caller.join(120)
        assert served_by(other, "clf") == "slow@1"
    assert deleted.status_code == 409, deleted.content
    assert deleted.json()["detail"].startswith("deleting slow@1 refused, nothing changed: ")
    assert "another switch is in progress" in deleted.json()["detail"]
    assert archived.status_code == 409, archived.content
    assert archived.json()["detail"].startswith("archiving slow@1 refused")
    assert responses and responses[0].status_code == 200, responses[0].content
    assert ModelVersion.objects.get(pk=slow.pk).status == "available"
    assert Slot.objects.get(name="clf").active_version_id == slow.pk


def test_a_delete_waits_for_the_switch_and_is_then_judged_on_its_outcome(
    api, other, settings, owner, slot, tmp_path
):
    gate = tmp_path / "held"
    slow = gate_version(owner, name="slow", version="1", gate=gate)
    answers: list = []
    with live_worker(settings):
        caller, responses = _switch_in_background(api, {"clf": "slow@1"})
        eventually(lambda: waiting_loads(gate), what="the load to start")

        def delete():
            try:
                answers.append(other.delete(SLOW))
            finally:
                connections.close_all()

        deleter = threading.Thread(target=delete)
        deleter.start()
        deleter.join(1.0)
        assert deleter.is_alive(), "the delete did not wait for the switch"
        gate.touch()
        caller.join(120)
        deleter.join(120)
        assert served_by(other, "clf") == "slow@1"
    assert responses[0].status_code == 200, responses[0].content
    assert answers[0].status_code == 409, answers[0].content
    assert "slot(s) clf serve it" in answers[0].json()["detail"]
    assert ModelVersion.objects.filter(pk=slow.pk).exists()
    assert not AuditEvent.objects.filter(action="version.delete").exists()
