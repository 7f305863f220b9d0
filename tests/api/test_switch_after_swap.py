"""A switch that fails after the real worker swapped: the commit fails (a database error,
the slot deleted meanwhile) or the progress stream breaks before the result.

The API reports the failure, and by the time it answers the worker serves the database's
desired state again: the web's nudge-back overrules the reconcile grace (an hour here,
with no periodic pass), so nothing else could have put the old version back.
"""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError, connections

from modelmgr.audit import audit_record
from modelmgr.deploy.client import WorkerClient
from modelmgr.models import AuditEvent, Slot
from tests.deploy.live import EventsListener, live_worker, predict, served_by, switch
from tests.inference.support import (
    eventually,
    gate_version,
    make_slot,
    onnx_version,
    waiting_loads,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ONLY_THE_NUDGE = {"MODELMGR_SWITCH_GRACE_S": 3600, "MODELMGR_RECONCILE_INTERVAL_S": 3600}


@pytest.fixture
def clf(owner, model_files, tmp_path):
    """Slot clf serving clf@1, with clf@2 to switch to."""
    v1 = onnx_version(owner, model_files, tmp_path, name="clf", version="1", seed=0)
    v2 = onnx_version(owner, model_files, tmp_path, name="clf", version="2", seed=1)
    make_slot("clf", v1, task="classifier")
    return v1, v2


def recording(monkeypatch) -> list[dict]:
    """The worker's events of every switch, as the web reads them off the stream."""
    real_stream = WorkerClient.switch_stream
    seen: list[dict] = []

    def stream(self, **kwargs):
        for event in real_stream(self, **kwargs):
            seen.append({**event, "switch_id": kwargs["switch_id"]})
            yield event

    monkeypatch.setattr(WorkerClient, "switch_stream", stream)
    return seen


def published(listener: EventsListener, switch_id: str, limit: float = 60.0) -> list[dict]:
    """switch.progress messages of one switch, up to its result (the channel layer may be
    shared with other processes: their switches are skipped)."""

    async def drain() -> list[dict]:
        got = []
        while True:
            message = await asyncio.wait_for(listener.layer.receive(listener.channel), limit)
            if message.get("type") == "switch.progress" and message["switch_id"] == switch_id:
                got.append(message)
                if message.get("event") == "result":
                    return got

    return async_to_sync(drain)()


def test_commit_failing_after_the_swap_is_a_503_and_the_old_version_serves_at_once(
    api, settings, monkeypatch, clf
):
    v1, _ = clf

    def refused_commit(**fields):
        if fields["outcome"] == AuditEvent.Outcome.OK:  # the success row, in the commit
            raise OperationalError("database is locked")
        return audit_record(**fields)

    seen = recording(monkeypatch)
    listener = EventsListener()
    try:
        with live_worker(settings, **ONLY_THE_NUDGE):
            assert served_by(api, "clf") == "clf@1"
            monkeypatch.setattr("modelmgr.deploy.switch.audit_record", refused_commit)
            response = switch(api, {"clf": "clf@2"})
            assert served_by(api, "clf") == "clf@1"  # at once, no waiting
            events = published(listener, seen[0]["switch_id"])
    finally:
        listener.close()
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["slots"] == {"clf": "the database refused the commit (database is locked)"}
    assert body["detail"] == (
        "switch failed, nothing changed: the database refused the commit (database is "
        "locked); the worker is back on the desired state in the database"
    )
    assert [e["ref"] for e in seen if e["event"] == "slot_done"] == ["clf@2"]  # it swapped
    assert events[-1]["event"] == "result" and events[-1]["ok"] is False
    assert events[-1]["errors"] == body["slots"]
    assert Slot.objects.get(name="clf").active_version_id == v1.pk
    audit = AuditEvent.objects.get(action="slot.switch")
    assert audit.outcome == "error" and "database is locked" in audit.error


def test_slot_deleted_during_the_switch_is_reported_and_no_longer_served(
    api, settings, owner, clf, tmp_path
):
    gate = tmp_path / "held"
    gate_version(owner, name="slow", version="1", gate=gate)
    responses = []

    def call():
        try:
            responses.append(switch(api, {"clf": "slow@1"}))
        finally:
            connections.close_all()

    with live_worker(settings, **ONLY_THE_NUDGE) as worker:
        caller = threading.Thread(target=call)
        caller.start()
        eventually(lambda: waiting_loads(gate), what="the load to start")
        Slot.objects.filter(name="clf").delete()
        gate.touch()
        caller.join(120)
        assert responses and responses[0].status_code == 404, responses
        assert responses[0].json()["slots"] == {"clf": "slot clf was deleted during the switch"}
        response = predict(api, "clf")
        assert response.status_code == 404, response.content
        assert "slot clf is not served" in response.json()["detail"]
        assert "clf" not in worker.client().get("/status").json()["slots"]


def test_stream_breaking_after_the_swap_is_a_503_and_the_old_version_serves_at_once(
    api, settings, monkeypatch, clf
):
    v1, _ = clf
    real_stream = WorkerClient.switch_stream
    seen: list[dict] = []

    def breaks_after_the_swap(self, **kwargs):
        stream = real_stream(self, **kwargs)
        for event in stream:
            seen.append(event)
            yield event
            if event.get("event") == "slot_done":
                stream.close()  # hang up, as a connection reset would, before the result
                broke = httpx.ReadError("connection reset by peer")
                raise self.unavailable(broke, self.switch_timeout, doing="switching")

    with live_worker(settings, **ONLY_THE_NUDGE) as worker:
        monkeypatch.setattr(WorkerClient, "switch_stream", breaks_after_the_swap)
        response = switch(api, {"clf": "clf@2"})
        assert served_by(api, "clf") == "clf@1"  # at once, no waiting
    assert [e["ref"] for e in seen if e["event"] == "slot_done"] == ["clf@2"]
    assert response.status_code == 503, response.content
    detail = response.json()["detail"]
    assert worker.url in detail and "connection reset by peer" in detail
    assert detail.endswith("; the worker is back on the desired state in the database")
    assert Slot.objects.get(name="clf").active_version_id == v1.pk
