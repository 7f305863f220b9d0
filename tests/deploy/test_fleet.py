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
