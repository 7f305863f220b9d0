"""Reconcile: the worker converges to Slot.active_version, minding recent switches."""

from __future__ import annotations

import pytest

from inference.reconcile import reconcile_plan
from modelmgr.models import Slot
from tests.inference.support import gate_version, make_slot, onnx_version

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
    worker.reconcile_once(force=True)
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
    assert result == {"changed": {"det": "clf@1"}, "errors": {}}
    assert served(worker) == {"det": "clf@1"}


@pytest.mark.django_db
def test_slot_removed_from_the_database_stops_being_served(worker, owner, model_files, tmp_path):
    make_slot("det", onnx_version(owner, model_files, tmp_path))
    worker.restore()
    Slot.objects.all().delete()
    worker.reconcile_once()
    assert served(worker) == {}
