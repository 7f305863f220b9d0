"""A switch in two phases inside one worker (inference.phases): prepare holds the
control lock and the loaded models; commit swaps; abort and expiry let them go."""

from __future__ import annotations

import pytest

from inference.phases import NotPrepared
from tests.inference.support import eventually, onnx_version

pytestmark = pytest.mark.django_db


def served(worker) -> dict[str, str]:
    return {slot: route.entry.ref for slot, route in worker.router.table.items()}


def ready_refs(worker) -> list[str]:
    return sorted(e.ref for e in worker.pool.entries() if e.state == "ready")


@pytest.fixture
def versions(owner, model_files, tmp_path):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    return v1, v2


def test_prepare_loads_without_swapping_and_commit_swaps(worker, versions):
    v1, v2 = versions
    worker.switch(switch_id="first", slots={"det": v1.pk})
    events = []
    result = worker.phases.prepare(switch_id="two", slots={"det": v2.pk}, emit=events.append)
    assert result["ok"] is True and result["slots"]["det"]["ref"] == "clf@2"
    assert served(worker) == {"det": "clf@1"}  # phase 1 swaps nothing
    assert ready_refs(worker) == ["clf@1", "clf@2"]
    assert worker.control_lock.locked()  # no reconcile moves it before the decision
    done = worker.phases.commit(switch_id="two")
    assert done["ok"] is True and done["slots"]["det"]["ref"] == "clf@2"
    swap = [(e["event"], e.get("phase"), e.get("ref")) for e in done["events"]]
    assert swap == [
        ("phase", "swapping", "clf@2"),
        ("slot_done", None, "clf@2"),
        ("phase", "unloading", "clf@1"),
    ]
    assert served(worker) == {"det": "clf@2"} and not worker.control_lock.locked()
    assert worker.phases.commit(switch_id="two") == done  # a repeated commit: same answer


def test_abort_unloads_what_prepare_loaded_and_frees_the_worker(worker, versions):
    v1, v2 = versions
    worker.switch(switch_id="first", slots={"det": v1.pk})
    worker.phases.prepare(switch_id="two", slots={"det": v2.pk}, emit=lambda e: None)
    assert worker.phases.abort(switch_id="two") == {"aborted": True, "switch_id": "two"}
    assert served(worker) == {"det": "clf@1"} and not worker.control_lock.locked()
    eventually(lambda: ready_refs(worker) == ["clf@1"], what="clf@2 unloaded")
    with pytest.raises(NotPrepared, match="not prepared here"):
        worker.phases.commit(switch_id="two")
    assert worker.phases.abort(switch_id="two")["aborted"] is False


def test_a_prepared_switch_nobody_decides_expires(worker, versions, settings):
    v1, v2 = versions
    worker.switch(switch_id="first", slots={"det": v1.pk})
    settings.MODELMGR_SWITCH_PREPARE_TTL_S = 0.2
    worker.phases.prepare(switch_id="two", slots={"det": v2.pk}, emit=lambda e: None)
    eventually(lambda: not worker.control_lock.locked(), what="the prepared switch expired")
    assert served(worker) == {"det": "clf@1"}
    eventually(lambda: ready_refs(worker) == ["clf@1"], what="clf@2 unloaded")


def test_a_failing_prepare_keeps_nothing_and_says_why(worker, versions):
    v1, _ = versions
    worker.switch(switch_id="first", slots={"det": v1.pk})
    result = worker.phases.prepare(switch_id="two", slots={"det": 999999}, emit=lambda e: None)
    assert result["ok"] is False and "999999" in result["errors"]["det"]
    assert served(worker) == {"det": "clf@1"} and not worker.control_lock.locked()
