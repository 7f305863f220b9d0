"""Pins: the worker keeps every version the database pins loaded, and only those pinned."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from inference.entry import READY
from inference.pins import pins_plan
from inference.reconcile import reconcile_run
from modelmgr.models import ModelVersion
from tests.inference.support import (
    eventually,
    gate_version,
    make_slot,
    onnx_version,
    waiting_loads,
)

PLAN = {"failures": {}, "now": 1000.0, "retry_after": 60.0, "force": False}


def pinned_refs(worker) -> list[str]:
    return sorted(e.ref for e in worker.pool.entries() if e.pinned and e.state == READY)


def loaded_refs(worker) -> list[str]:
    return sorted(e.ref for e in worker.pool.entries() if e.state == READY)


def in_thread_closing(call):
    """``call`` for another thread, which closes its database connections when done."""

    def run():
        try:
            call()
        finally:
            connections.close_all()

    return run


def set_pinned(version, pinned: bool = True) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(pinned=pinned)


def test_plan_loads_missing_pins_pins_loaded_ones_and_unpins_the_rest():
    plan = pins_plan(desired={1, 2, 3}, ready={2, 3, 4, 5}, pinned={3, 5}, **PLAN)
    assert (plan.load, plan.pin, plan.unpin) == ([1], [2], [5])


def test_plan_retries_a_failed_pin_after_a_while_or_when_forced():
    failed = {**PLAN, "failures": {1: 990.0}}
    assert pins_plan(desired={1}, ready=set(), pinned=set(), **failed).load == []
    forced = {**failed, "force": True}
    assert pins_plan(desired={1}, ready=set(), pinned=set(), **forced).load == [1]
    later = {**failed, "now": 1050.0}
    assert pins_plan(desired={1}, ready=set(), pinned=set(), **later).load == [1]


@pytest.mark.django_db
def test_reconcile_loads_and_pins_a_version_no_slot_serves(worker, owner, model_files, tmp_path):
    pinned = onnx_version(owner, model_files, tmp_path, name="keep", pinned=True)
    onnx_version(owner, model_files, tmp_path, name="other", seed=1)
    result = worker.reconcile_once()
    assert result["pins"] == {"pinned": ["keep@1"], "unpinned": [], "errors": {}}
    (model,) = worker.status()["models"]
    assert model["version_id"] == pinned.pk and model["pinned"] is True and model["slots"] == []
    again = worker.reconcile_once()
    assert again["pins"] == {"pinned": [], "unpinned": [], "errors": {}}


@pytest.mark.django_db
def test_a_loaded_model_is_pinned_in_place(worker, owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    worker.load(version_id=version.pk)
    entry = worker.pool.get(version.pk)
    set_pinned(version)
    worker.reconcile_once()
    assert worker.pool.get(version.pk) is entry and entry.pinned is True


@pytest.mark.django_db
def test_a_cleared_pin_is_unpinned_and_stays_loaded_until_evicted(
    worker, owner, model_files, tmp_path
):
    version = onnx_version(owner, model_files, tmp_path, pinned=True)
    worker.reconcile_once()
    set_pinned(version, False)
    result = worker.reconcile_once()
    assert result["pins"]["unpinned"] == ["clf@1"]
    assert loaded_refs(worker) == ["clf@1"] and pinned_refs(worker) == []


@pytest.mark.django_db
def test_the_database_wins_over_a_pin_made_through_the_workers_load(
    worker, owner, model_files, tmp_path
):
    version = onnx_version(owner, model_files, tmp_path)
    assert worker.load(version_id=version.pk, pin=True)["pinned"] is True
    worker.reconcile_once()
    assert pinned_refs(worker) == [] and loaded_refs(worker) == ["clf@1"]


@pytest.mark.django_db
def test_a_slot_switched_away_from_a_pinned_version_leaves_it_loaded(
    worker, owner, model_files, tmp_path
):
    v1 = onnx_version(owner, model_files, tmp_path, version="1", pinned=True)
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("det", v1)
    worker.restore()
    assert pinned_refs(worker) == ["clf@1"]
    worker.switch(switch_id="s", slots={"det": v2.pk})
    assert loaded_refs(worker) == ["clf@1", "clf@2"] and pinned_refs(worker) == ["clf@1"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields", [{"status": "archived"}, {"status": "error"}, {"unsafe": True, "trusted": False}]
)
def test_a_pinned_version_that_may_not_be_loaded_is_left_out(
    worker, owner, model_files, tmp_path, fields
):
    version = onnx_version(owner, model_files, tmp_path)
    worker.load(version_id=version.pk, pin=True)
    ModelVersion.objects.filter(pk=version.pk).update(pinned=True, **fields)
    result = worker.reconcile_once()
    assert result["pins"] == {"pinned": [], "unpinned": ["clf@1"], "errors": {}}
    assert pinned_refs(worker) == []


@pytest.mark.django_db
def test_a_pin_that_does_not_fit_is_reported_not_raised_and_retried_later(
    worker, owner, model_files, tmp_path, settings
):
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 64
    big = onnx_version(owner, model_files, tmp_path, name="big", min_vram_mb=100, pinned=True)
    onnx_version(owner, model_files, tmp_path, name="small", seed=1, pinned=True)
    result = reconcile_run(worker)
    why = "big@1 needs 100 MB, 64 MB free of 64 MB budget"
    assert result["pins"] == {"pinned": ["small@1"], "unpinned": [], "errors": {big.pk: why}}
    assert worker.status()["pin_errors"] == {str(big.pk): why}
    assert pinned_refs(worker) == ["small@1"]

    failed_at = worker.pin_failures[big.pk]
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 0  # room now; a periodic pass waits its turn
    reconcile_run(worker)
    assert worker.pin_failures[big.pk] == failed_at and pinned_refs(worker) == ["small@1"]
    reconcile_run(worker, force=True)  # a nudge retries at once
    assert pinned_refs(worker) == ["big@1", "small@1"]
    assert worker.status()["pin_errors"] == {} and worker.pin_failures == {}


@pytest.mark.django_db
def test_a_pin_that_is_no_longer_wanted_loses_its_error(worker, owner, model_files, tmp_path):
    broken = gate_version(owner, name="broken", fail="bad kernel")
    set_pinned(broken)
    assert "bad kernel" in reconcile_run(worker)["pins"]["errors"][broken.pk]
    set_pinned(broken, False)
    assert reconcile_run(worker)["pins"]["errors"] == {} and worker.pin_failures == {}


@pytest.mark.django_db(transaction=True)
def test_restore_is_ready_once_slots_serve_then_loads_the_pins(
    worker, owner, model_files, tmp_path
):
    make_slot("det", onnx_version(owner, model_files, tmp_path, name="det"))
    gate = tmp_path / "pin-gate"
    set_pinned(gate_version(owner, name="slow", gate=gate))
    thread = threading.Thread(target=in_thread_closing(worker.restore))
    thread.start()
    try:
        eventually(lambda: waiting_loads(gate) == 1, what="the pin's load")
        assert worker.ready is True  # serving while the pin still loads
        assert [r.entry.ref for r in worker.router.table.values()] == ["det@1"]
    finally:
        gate.touch()
        thread.join(timeout=60)
    assert pinned_refs(worker) == ["slow@1"]
