"""Reconcile: the worker converges to Slot.active_version, minding recent switches."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from django.db import connections

from inference.reconcile import reconcile_plan, reconcile_run
from inference.switch import switch_apply
from modelmgr.models import Slot
from tests.inference.support import NO_PINS, eventually, gate_version, make_slot, onnx_version

PLAN = {
    "switched_at": {},
    "failures": {},
    "now": 1000.0,
    "grace": 30.0,
    "retry_after": 60.0,
    "force": False,
}


def served(worker) -> dict[str, str]:
    return {slot: route.entry.ref for slot, route in worker.router.table.items()}


def test_plan_brings_every_slot_to_its_desired_version():
    changes, settled = reconcile_plan(
        desired={"a": 1, "b": 2, "c": None, "d": 4},
        actual={"a": 1, "b": 3, "c": 5, "gone": 6},
        **PLAN,
    )
    assert changes == {"b": 2, "c": None, "d": 4, "gone": None} and settled == ["a"]


def test_plan_leaves_a_slot_switched_within_the_grace_period_alone():
    recent = {**PLAN, "switched_at": {"a": 990.0}}
    assert reconcile_plan(desired={"a": 1}, actual={"a": 2}, **recent)[0] == {}
    later = {**recent, "now": 990.0 + 30.0}
    assert reconcile_plan(desired={"a": 1}, actual={"a": 2}, **later)[0] == {"a": 1}


def test_plan_overrules_the_grace_only_for_the_slots_named():
    recent = {**PLAN, "switched_at": {"a": 990.0, "b": 990.0}, "overrule": {"a"}}
    changes, _ = reconcile_plan(desired={"a": 1, "b": 1}, actual={"a": 2, "b": 2}, **recent)
    assert changes == {"a": 1}


def test_plan_retries_a_failed_version_after_a_while_or_when_forced():
    failed = {**PLAN, "failures": {"a": (1, 990.0)}}
    assert reconcile_plan(desired={"a": 1}, actual={}, **failed)[0] == {}
    assert reconcile_plan(desired={"a": 1}, actual={}, **{**failed, "force": True})[0] == {"a": 1}
    assert reconcile_plan(desired={"a": 1}, actual={}, **{**failed, "now": 1050.0})[0] == {"a": 1}
    # another desired version is tried at once
    assert reconcile_plan(desired={"a": 7}, actual={}, **failed)[0] == {"a": 7}


@pytest.mark.django_db
def test_restore_serves_what_the_database_wants_and_then_is_ready(
    worker, owner, model_files, tmp_path
):
    make_slot("det", onnx_version(owner, model_files, tmp_path, name="det"))
    make_slot("cls", onnx_version(owner, model_files, tmp_path, name="cls", seed=1))
    make_slot("idle")
    assert worker.ready is False
    worker.restore()
    assert worker.ready is True and served(worker) == {"cls": "cls@1", "det": "det@1"}


@pytest.mark.django_db
def test_restore_goes_on_past_a_slot_that_fails_and_reports_it(
    worker, owner, model_files, tmp_path
):
    make_slot("det", onnx_version(owner, model_files, tmp_path, name="det"))
    make_slot("broken", gate_version(owner, name="broken", fail="bad kernel"))
    worker.restore()
    assert worker.ready is True and served(worker) == {"det": "det@1"}
    status = worker.status()
    assert status["errors"] == {"broken": "loading broken@1 failed: RuntimeError: bad kernel"}
    assert "broken" not in status["slots"]
    Slot.objects.filter(name="broken").update(active_version=None)
    worker.reconcile_once()
    assert worker.status()["errors"] == {}


@pytest.mark.django_db
def test_switch_not_yet_committed_is_not_reverted_within_the_grace(
    worker, owner, model_files, tmp_path, settings
):
    settings.MODELMGR_SWITCH_GRACE_S = 3600
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("det", v1)
    worker.restore()
    worker.switch(switch_id="s", slots={"det": v2.pk})  # the web commits after this
    reconcile_run(worker, force=True)  # a periodic pass, even a nudged one, keeps the grace
    worker.reconcile_once()
    assert served(worker) == {"det": "clf@2"}
    Slot.objects.filter(name="det").update(active_version=v2)  # the web's commit
    worker.reconcile_once()
    assert served(worker) == {"det": "clf@2"} and worker.switched_at == {}


@pytest.mark.django_db
def test_database_wins_after_the_grace_when_the_switch_was_never_committed(
    worker, owner, model_files, tmp_path, settings
):
    settings.MODELMGR_SWITCH_GRACE_S = 0
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("det", v1)
    worker.restore()
    worker.switch(switch_id="s", slots={"det": v2.pk})  # the web crashed before committing
    result = worker.reconcile_once()
    assert result == {
        "changed": {"det": "clf@1"},
        "errors": {},
        "pins": NO_PINS,
    }
    assert served(worker) == {"det": "clf@1"}


@pytest.mark.django_db
def test_slot_removed_from_the_database_stops_being_served(worker, owner, model_files, tmp_path):
    make_slot("det", onnx_version(owner, model_files, tmp_path))
    worker.restore()
    Slot.objects.all().delete()
    worker.reconcile_once()
    assert served(worker) == {}


@pytest.mark.django_db
def test_requested_reconcile_overrules_the_grace_of_a_switch_nobody_will_commit(
    worker, owner, model_files, tmp_path, settings
):
    settings.MODELMGR_SWITCH_GRACE_S = 3600
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("det", v1)
    worker.restore()
    worker.switch(switch_id="s", slots={"det": v2.pk})  # then the web's commit fails
    result = worker.reconcile_once(force=True)  # POST /reconcile: the web's nudge-back
    assert result == {
        "changed": {"det": "clf@1"},
        "errors": {},
        "pins": NO_PINS,
    }
    assert served(worker) == {"det": "clf@1"}


def in_thread(call) -> threading.Thread:
    def run():
        try:
            call()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def waiting_for_the_lock_since_asked(thread: threading.Thread) -> bool:
    """The thread is in reconcile_run, past noting when it was asked (so blocked on the
    control lock, which a held switch keeps)."""
    frame = sys._current_frames().get(thread.ident)
    return (
        frame is not None
        and frame.f_code.co_name == "reconcile_run"
        and "requested" in frame.f_locals
    )


@pytest.mark.django_db(transaction=True)
def test_requested_reconcile_spares_a_switch_that_arrived_after_it(
    worker, owner, model_files, tmp_path, settings
):
    """A switch that reached the worker before the request is undone; one that arrived
    after it keeps its grace (its commit may be in flight), even when it swaps first."""
    settings.MODELMGR_SWITCH_GRACE_S = 3600
    make_slot("det", onnx_version(owner, model_files, tmp_path, version="1"))
    make_slot("pol", onnx_version(owner, model_files, tmp_path, name="pol", seed=2))
    det2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    pol2 = onnx_version(owner, model_files, tmp_path, name="pol", version="2", seed=3)
    worker.restore()
    worker.switch(switch_id="ahead", slots={"det": det2.pk})  # its commit failed
    with worker.control_lock:  # the worker is busy: the request waits
        request = in_thread(lambda: worker.reconcile_once(force=True))
        eventually(lambda: waiting_for_the_lock_since_asked(request), what="the request")
        # A switch that arrives now and gets the lock first (what worker.switch runs).
        switch_apply(
            worker,
            slots={"pol": pol2.pk},
            emit=lambda event: None,
            atomic=True,
            switch_id="behind",
            arrived=time.monotonic(),
        )
    request.join(60)
    assert served(worker) == {"det": "clf@1", "pol": "pol@2"}
