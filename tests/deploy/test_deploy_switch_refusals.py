"""Switches refused before the worker is involved, and the worker-down path.

Every refusal names the cause per slot and leaves nothing behind: the slots keep their
versions and no audit row is written (nothing was attempted). A worker that cannot be
reached fails fast with 503 naming it, and that attempt is audited as an error.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from modelmgr.deploy.errors import SlotErrors, SwitchWorkerUnavailable
from modelmgr.deploy.lock import switch_lock
from modelmgr.deploy.services import slot_rollback, slots_switch
from modelmgr.exceptions import NotFound
from modelmgr.models import AuditEvent, Slot
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def serving(owner):
    """Slot 'clf' serving clf@1; clf@2 available; slot 'det' for detectors, empty."""
    v1, v2 = version_of(owner, version="1"), version_of(owner, version="2")
    Slot.objects.create(name="clf", task="classifier", active_version=v1)
    Slot.objects.create(name="det", task="detector")
    return v1, v2


def refused(actor, assignments) -> SlotErrors:
    with pytest.raises(SlotErrors) as caught:
        slots_switch(assignments=assignments, actor=actor)
    return caught.value


def assert_nothing_changed(v1):
    assert Slot.objects.get(name="clf").active_version_id == v1.pk
    assert Slot.objects.get(name="clf").previous_version_id is None
    assert Slot.objects.get(name="det").active_version_id is None
    # A refusal is audited as such; nothing else is written.
    assert not AuditEvent.objects.exclude(outcome="refused").exists()


def test_unknown_slot_is_named(owner, serving):
    error = refused(owner, {"nope": "clf@2"})
    assert error.status == 404
    assert error.slots == {"nope": "there is no slot named 'nope'"}
    assert_nothing_changed(serving[0])


def test_malformed_ref_is_422(owner, serving):
    error = refused(owner, {"clf": "clf@@2"})
    assert error.status == 422 and "not a model reference" in error.slots["clf"]
    assert_nothing_changed(serving[0])


def test_unknown_version_is_404(owner, serving):
    error = refused(owner, {"clf": "clf@9"})
    assert error.status == 404 and "clf@9" in error.slots["clf"]
    assert_nothing_changed(serving[0])


def test_someone_elses_version_is_not_found(other_user, owner, serving):
    version_of(other_user, name="theirs")
    error = refused(owner, {"clf": "theirs@1"})
    assert error.status == 404
    assert_nothing_changed(serving[0])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"status": "error", "error": "bad hash"}, "clf@3 is error (bad hash), not available"),
        ({"status": "archived"}, "clf@3 is archived, not available"),
        ({"status": "pending"}, "not available"),
        ({"unsafe": True}, "must mark it trusted"),
    ],
)
def test_undeployable_version_is_409(owner, serving, fields, named):
    version_of(owner, version="3", **fields)
    error = refused(owner, {"clf": "clf@3"})
    assert error.status == 409 and named in error.slots["clf"]
    assert_nothing_changed(serving[0])


def test_wrong_task_is_refused(owner, serving):
    error = refused(owner, {"det": "clf@2"})
    assert error.status == 409
    assert error.slots["det"] == (
        "clf@2 does not fit slot det: clf@2 is a classifier model, slot det serves detector"
    )
    assert_nothing_changed(serving[0])


def test_signature_that_breaks_the_contract_is_refused(owner, serving):
    Slot.objects.filter(name="clf").update(
        contract={"inputs": [{"name": "x", "shape": [None, 3], "dtype": "float32"}]}
    )
    error = refused(owner, {"clf": "clf@2"})
    assert "input 'x' has shape [batch, 4], the contract wants [?, 3]" in error.slots["clf"]
    assert_nothing_changed(serving[0])


def test_every_bad_slot_is_named_and_good_ones_do_not_switch(owner, serving):
    error = refused(owner, {"clf": "clf@2", "det": "clf@2", "nope": "clf@2"})
    assert set(error.slots) == {"det", "nope"}
    assert error.status == 422  # several kinds of problem
    assert "det: clf@2 does not fit" in error.detail and "nope: there is no slot" in error.detail
    assert_nothing_changed(serving[0])


def test_empty_switch_is_422(owner, serving):
    assert refused(owner, {}).status == 422


def test_replacing_someone_elses_version_needs_staff(owner, other_user, serving):
    theirs = version_of(other_user, name="theirs")
    Slot.objects.filter(name="clf").update(active_version=theirs)
    error = refused(owner, {"clf": "clf@2"})
    assert error.status == 403
    assert "theirs@1 (served now) belongs to oscar" in error.slots["clf"]


def test_switch_to_the_served_version_is_unchanged_and_quiet(owner, serving, closed_port_worker):
    result = slots_switch(assignments={"clf": "clf@1"}, actor=owner)
    assert result.slots["clf"].unchanged
    assert_nothing_changed(serving[0])  # the worker was not even asked


def test_worker_down_is_a_fast_503_naming_it(owner, serving, closed_port_worker):
    with pytest.raises(SwitchWorkerUnavailable) as caught:
        slots_switch(assignments={"clf": "clf@2"}, actor=owner)
    error = caught.value
    assert error.status == 503
    assert closed_port_worker in error.detail and "cannot connect" in error.detail
    assert closed_port_worker in error.slots["clf"]
    assert Slot.objects.get(name="clf").active_version_id == serving[0].pk
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome) == ("slot.switch", "error")
    assert event.before == {"clf": "clf@1"} and event.after == {"clf": "clf@2"}
    assert closed_port_worker in event.error


def test_rollback_without_previous_version_is_409(owner, serving):
    with pytest.raises(SlotErrors) as caught:
        slot_rollback(slot_name="clf", actor=owner)
    assert caught.value.status == 409 and "no previous version" in caught.value.detail


def test_rollback_of_unknown_slot_is_404(owner, serving):
    with pytest.raises(NotFound):
        slot_rollback(slot_name="nope", actor=owner)


def test_a_switch_waits_for_the_one_in_progress_then_gives_up(owner, serving, settings):
    settings.MODELMGR_SWITCH_LOCK_TIMEOUT_S = 0
    held, release = threading.Event(), threading.Event()

    def hold():
        try:
            with switch_lock(switch_id="first", slots=["clf"]):
                held.set()
                release.wait(60)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(60)
        error = refused(owner, {"clf": "clf@2"})
        assert error.status == 409
        assert "another switch is in progress (switch first" in error.slots["clf"]
    finally:
        release.set()
        holder.join(60)
    assert_nothing_changed(serving[0])
