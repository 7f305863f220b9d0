"""Which workers the web uses: up by heartbeat age, placement by group, the predict
spread by requests in flight, and the MODELMGR_WORKER_URL fallback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from modelmgr.deploy.fleet import fleet_members, fleet_up, switch_targets_for
from modelmgr.deploy.spread import Spread
from modelmgr.exceptions import WorkerUnavailable
from modelmgr.models import Slot
from modelmgr.models import Worker as WorkerRow

pytestmark = pytest.mark.django_db


def register(name: str, *, group: str = "default", age_s: float = 0.0) -> WorkerRow:
    now = timezone.now()
    return WorkerRow.objects.create(
        name=name,
        control_url=f"http://{name}.internal:8001",
        serve_url=f"http://{name}.internal:8002",
        group=group,
        heartbeat_s=5.0,
        started_at=now - timedelta(hours=1),
        heartbeat_at=now - timedelta(seconds=age_s),
    )


def test_a_worker_that_missed_three_heartbeats_is_down(settings):
    settings.MODELMGR_WORKER_DOWN_AFTER = 3
    register("fresh", age_s=14)
    register("stale", age_s=16)
    assert {m.name: m.up for m in fleet_members()} == {"fresh": True, "stale": False}
    assert [m.name for m in fleet_up()] == ["fresh"]


def test_with_no_worker_up_the_web_uses_the_configured_url(settings):
    settings.MODELMGR_WORKER_URL = "http://127.0.0.1:18001"
    register("stale", age_s=600)
    (only,) = fleet_up()
    assert not only.registered and only.control_url == "http://127.0.0.1:18001"


def test_a_slot_placed_on_a_group_goes_to_that_group_only():
    register("cpu-1")
    register("gpu-1", group="gpu")
    register("gpu-2", group="gpu")
    Slot.objects.create(name="det", worker_group="gpu")
    Slot.objects.create(name="pose")
    targets, up = switch_targets_for({"det": 1, "pose": 2, "det#canary": 3})
    assert up == 3
    assert {m.name: slots for m, slots in targets} == {
        "cpu-1": {"pose": 2},
        "gpu-1": {"det": 1, "pose": 2, "det#canary": 3},
        "gpu-2": {"det": 1, "pose": 2, "det#canary": 3},
    }


def test_a_slot_whose_group_has_no_worker_up_is_refused_naming_it():
    register("cpu-1")
    register("gpu-1", group="gpu", age_s=600)
    Slot.objects.create(name="det", worker_group="gpu")
    with pytest.raises(WorkerUnavailable) as caught:
        switch_targets_for({"det": 1})
    assert caught.value.status == 503
    assert "det (group 'gpu')" in caught.value.detail


def test_predictions_go_to_the_worker_with_fewest_in_flight(settings):
    settings.MODELMGR_FLEET_REFRESH_S = 60
    a, b = register("a"), register("b")
    spread = Spread()
    spread.in_flight[a.control_url] = 3
    for _ in range(4):
        first = async_to_sync(spread.candidates)("det")[0]
        assert first.name == "b"
    spread.in_flight[b.control_url] = 5
    assert async_to_sync(spread.candidates)("det")[0].name == "a"
    # Idle workers take turns.
    spread.in_flight.clear()
    firsts = {async_to_sync(spread.candidates)("det")[0].name for _ in range(4)}
    assert firsts == {"a", "b"}


def test_a_worker_that_just_failed_is_tried_last(settings):
    settings.MODELMGR_FLEET_REFRESH_S = 60
    register("a")
    register("b")
    spread = Spread()
    members = async_to_sync(spread.candidates)("det")
    spread.failed(members[0])
    for _ in range(3):
        assert async_to_sync(spread.candidates)("det")[-1].name == members[0].name


def test_a_one_off_job_goes_to_the_named_worker_or_the_one_with_most_free_memory(settings):
    from modelmgr.deploy.fleet import worker_for_job
    from modelmgr.registry.validation import InvalidInput

    settings.MODELMGR_WORKER_DOWN_AFTER = 3
    for name, free, group in (("small", 1, "default"), ("big", 9, "default"), ("gpu", 5, "gpu")):
        row = register(name, group=group)
        WorkerRow.objects.filter(pk=row.pk).update(memory_free_bytes=free << 30)
    register("gone", age_s=60)
    Slot.objects.create(name="det", worker_group="gpu")
    Slot.objects.create(name="arm", worker_group="arm64")
    assert worker_for_job().name == "big"
    assert worker_for_job(name="small").name == "small"
    assert worker_for_job(slot="det").name == "gpu"  # the only one the slot runs on
    with pytest.raises(InvalidInput, match="'nope' is not registered.*big, gone, gpu, small"):
        worker_for_job(name="nope")
    with pytest.raises(WorkerUnavailable, match="'gone' is down"):
        worker_for_job(name="gone")
    with pytest.raises(WorkerUnavailable, match="serves arm"):
        worker_for_job(slot="arm")


def test_memory_for_a_slot_is_the_tightest_serving_worker_and_what_all_of_them_hold():
    from modelmgr.deploy.fleet import Member
    from modelmgr.deploy.workers import memory_where, worker_entry

    def answer(name, group, free, loaded):
        member = Member(name=name, control_url=f"http://{name}", serve_url="", group=group, up=True)
        models = [{"version_id": vid} for vid in loaded]
        status = {"memory": {"free_bytes": free}, "models": models}
        return member, worker_entry(member, reachable=True, error="", status=status)

    Slot.objects.create(name="det", worker_group="gpu")
    silent = Member("d", "http://d", "", "gpu", True)
    asked = [
        answer("a", "gpu", 300, {1, 2}),
        answer("b", "gpu", 500, {2, 3}),
        answer("c", "cpu", 100, {2}),
        (silent, worker_entry(silent, reachable=False, error="refused", status=None)),
    ]
    assert memory_where(asked, "det") == (300, {2}, 2)  # c does not serve det
    assert memory_where(asked) == (100, {2}, 3)
    assert memory_where(asked[3:], "det") == (None, set(), 0)
