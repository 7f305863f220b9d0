"""A slot's canary and shadow in the routing table: arm choice, sticky keys, swaps that
keep or drop arms, the reconcile to the database's arms, output agreement."""

from __future__ import annotations

import numpy as np
import pytest

from inference.arms import outputs_agree
from inference.pool import READY, UNLOADED
from inference.reconcile import reconcile_run
from inference.router import canary_bucket
from modelmgr.models import Slot
from tests.inference.support import eventually, make_slot, onnx_version
from tests.inference.test_router import loaded

pytestmark = pytest.mark.django_db


@pytest.fixture
def three(worker, owner, model_files, tmp_path):
    return [
        loaded(worker, onnx_version(owner, model_files, tmp_path, version=str(n), seed=n))
        for n in (1, 2, 3)
    ]


def pick(worker, slot="det", key=None):
    chosen = worker.router.acquire_arm(slot, key)
    worker.router.release(chosen.entry)
    if chosen.shadow is not None:
        worker.router.release(chosen.shadow)
    return chosen


def test_a_client_key_always_lands_in_the_same_bucket_and_keys_spread_evenly():
    assert canary_bucket("det", "robot-1") == canary_bucket("det", "robot-1")
    buckets = [canary_bucket("det", f"robot-{n}") for n in range(4000)]
    assert all(0 <= b < 1 for b in buckets)
    below = sum(b < 0.2 for b in buckets)
    assert 0.17 * 4000 < below < 0.23 * 4000


def test_share_zero_and_one_and_a_sticky_key(worker, three):
    primary, canary, _ = three
    worker.router.swap({"det": primary, "det#canary": canary}, {"det": 0.0})
    assert {pick(worker).arm for _ in range(50)} == {"primary"}
    worker.router.swap({}, {"det": 1.0})
    assert {pick(worker).entry for _ in range(50)} == {canary}
    worker.router.swap({}, {"det": 0.5})
    for key in ("a", "b", "c", "d"):
        assert len({pick(worker, key=key).arm for _ in range(20)}) == 1


def test_the_shadow_is_held_beside_the_answering_arm(worker, three):
    primary, _, shadow = three
    worker.router.swap({"det": primary, "det#shadow": shadow})
    chosen = worker.router.acquire_arm("det")
    assert chosen.entry is primary and chosen.shadow is shadow
    assert shadow.in_flight == 1
    worker.router.release(chosen.entry)
    worker.router.release(chosen.shadow)


def test_a_new_primary_keeps_the_arms_and_no_primary_drops_them(worker, three):
    primary, canary, shadow = three
    worker.router.swap({"det": primary, "det#canary": canary, "det#shadow": shadow}, {"det": 0.3})
    assert worker.router.actual_state() == {
        "det": primary.version_id,
        "det#canary": canary.version_id,
        "det#shadow": shadow.version_id,
    }
    worker.router.swap({"det": canary, "det#canary": None})  # a promote
    route = worker.router.table["det"]
    assert (route.entry, route.canary, route.share, route.shadow) == (canary, None, 0.0, shadow)
    eventually(lambda: primary.state == UNLOADED, what="the old primary's unload")
    replaced = worker.router.swap({"det": None})
    assert replaced == {"det": canary, "det#shadow": shadow}
    assert worker.router.actual_state() == {}
    eventually(lambda: shadow.state == UNLOADED, what="the shadow's unload")


def test_an_arm_of_an_unserved_slot_is_ignored(worker, three):
    worker.router.swap({"det#canary": three[1]})
    assert worker.router.table == {} and three[1].state == READY


def test_reconcile_brings_the_arms_and_the_share_to_the_database(
    worker, owner, model_files, tmp_path
):
    v1, v2, v3 = (
        onnx_version(owner, model_files, tmp_path, version=str(n), seed=n) for n in (1, 2, 3)
    )
    make_slot("det", v1, canary_version=v2, canary_share=0.25, shadow_version=v3)
    reconcile_run(worker, pins=False)
    route = worker.router.table["det"]
    assert (route.entry.ref, route.canary.ref, route.share, route.shadow.ref) == (
        "clf@1",
        "clf@2",
        0.25,
        "clf@3",
    )
    Slot.objects.filter(name="det").update(canary_share=0.75, shadow_version=None)
    reconcile_run(worker, pins=False)
    route = worker.router.table["det"]
    assert (route.canary.ref, route.share, route.shadow) == ("clf@2", 0.75, None)


def test_outputs_agree_within_tolerance_and_by_argmax():
    a = {"y": np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)}
    assert outputs_agree(a, {"y": a["y"] + 1e-7}) == (True, True)
    assert outputs_agree(a, {"y": a["y"] * 0.5}) == (False, True)
    assert outputs_agree(a, {"y": a["y"][:, ::-1]}) == (False, False)
    assert outputs_agree(a, {"z": a["y"]}) == (False, False)
