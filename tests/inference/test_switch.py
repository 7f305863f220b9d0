"""Switching inside the worker: phases in order, parallel loads, all-or-nothing."""

from __future__ import annotations

import threading

import pytest

from inference.pool import DRAINING, READY
from tests.inference.support import (
    ONNX_SIGNATURE,
    corrupt,
    eventually,
    gate_version,
    make_slot,
    onnx_version,
    torch_version,
    waiting_loads,
)

pytestmark = pytest.mark.django_db


def run_switch(worker, slots, switch_id="sw-1"):
    events = []
    result = worker.switch(switch_id=switch_id, slots=slots, emit=events.append)
    return result, events


def served(worker) -> dict[str, str]:
    return {slot: route.entry.ref for slot, route in worker.router.table.items()}


def test_switch_reports_each_phase_in_order(worker, owner, model_files, tmp_path):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    run_switch(worker, {"det": v1.pk}, "first")
    result, events = run_switch(worker, {"det": v2.pk}, "second")
    steps = [(e["event"], e.get("phase"), e.get("ref")) for e in events]
    assert steps == [
        ("phase", "validating", "clf@2"),
        ("phase", "loading", "clf@2"),
        ("phase", "warming", "clf@2"),
        ("phase", "swapping", "clf@2"),
        ("slot_done", None, "clf@2"),
        ("phase", "unloading", "clf@1"),
        ("result", None, None),
    ]
    assert result["ok"] is True and result["slots"]["det"]["ref"] == "clf@2"
    assert result["slots"]["det"]["load_ms"] > 0 and result["swap_ms"] > 0
    assert served(worker) == {"det": "clf@2"}


def test_switch_loads_the_versions_in_parallel(worker, owner, tmp_path):
    gate = tmp_path / "gate"
    a = gate_version(owner, name="a", gate=gate)
    b = gate_version(owner, name="b", gate=gate)
    seen = []

    def open_gate_once_both_wait():
        # Both loads wait on the gate at the same time, or this never becomes true.
        try:
            seen.append(eventually(lambda: waiting_loads(gate) == 2, limit=30))
        finally:
            gate.touch()

    opener = threading.Thread(target=open_gate_once_both_wait)
    opener.start()
    result, _ = run_switch(worker, {"left": a.pk, "right": b.pk})
    opener.join()
    assert seen == [True]
    assert result["ok"] is True and served(worker) == {"left": "a@1", "right": "b@1"}


def test_corrupt_artifact_fails_the_whole_switch_and_changes_nothing(
    worker, owner, model_files, tmp_path
):
    left1 = onnx_version(owner, model_files, tmp_path, name="left", version="1")
    right1 = onnx_version(owner, model_files, tmp_path, name="right", version="1")
    run_switch(worker, {"left": left1.pk, "right": right1.pk}, "before")
    left2 = onnx_version(owner, model_files, tmp_path, name="left", version="2", seed=1)
    right2 = onnx_version(owner, model_files, tmp_path, name="right", version="2", seed=2)
    corrupt(right2)
    result, events = run_switch(worker, {"left": left2.pk, "right": right2.pk})
    assert result == {
        "event": "result",
        "ok": False,
        "errors": {"right": "artifact model.onnx of right@2 is corrupt (sha256 mismatch)"},
    }
    assert not any(e["event"] == "slot_done" or e.get("phase") == "swapping" for e in events)
    assert served(worker) == {"left": "left@1", "right": "right@1"}
    eventually(
        lambda: {e.ref for e in worker.pool.entries()} == {"left@1", "right@1"},
        what="the freshly loaded left@2 unloaded again",
    )


def test_model_still_in_memory_is_refused_once_its_stored_file_is_corrupt(
    worker, owner, model_files, tmp_path
):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    run_switch(worker, {"det": v2.pk}, "to-2")
    held = worker.router.acquire("det")  # a request still running on clf@2
    run_switch(worker, {"det": v1.pk}, "to-1")
    assert held.state == DRAINING
    corrupt(v2)
    result, events = run_switch(worker, {"det": v2.pk}, "to-2-again")
    assert result["errors"] == {"det": "artifact model.onnx of clf@2 is corrupt (sha256 mismatch)"}
    assert served(worker) == {"det": "clf@1"} and held.state == DRAINING
    worker.router.release(held)
    eventually(
        lambda: {e.ref for e in worker.pool.entries()} == {"clf@1"},
        what="clf@2 unloaded once its last request ended",
    )


def test_version_that_breaks_the_slot_contract_is_refused_before_loading(
    worker, owner, model_files, tmp_path
):
    contract = {"inputs": [{"name": "features", "shape": [None, 16], "dtype": "float32"}]}
    make_slot("classifier", contract=contract)
    version = onnx_version(owner, model_files, tmp_path)
    result, events = run_switch(worker, {"classifier": version.pk})
    assert result["errors"] == {
        "classifier": "clf@1 does not fit slot classifier's contract: input 'features' is missing"
    }
    assert [e.get("phase") for e in events] == ["validating", None]
    assert worker.pool.entries() == [] and served(worker) == {}


def test_declared_signature_the_model_does_not_have_fails_the_load(
    worker, owner, model_files, tmp_path
):
    lying = {
        "inputs": [{"name": "x", "shape": ["batch", 8], "dtype": "float32"}],
        "outputs": ONNX_SIGNATURE["outputs"],
    }
    version = onnx_version(owner, model_files, tmp_path, signature=lying)
    result, _ = run_switch(worker, {"det": version.pk})
    assert result["errors"]["det"] == (
        "loading clf@1 failed: the declared signature does not match the ONNX graph: input "
        "'x' is declared [batch, 8], the graph takes [batch, 4]"
    )
    assert worker.pool.entries() == []


def test_undeployable_versions_are_refused_with_the_reason(worker, owner, model_files, tmp_path):
    pending = onnx_version(owner, model_files, tmp_path, version="1", status="pending")
    weights = torch_version(owner, model_files, tmp_path, kind="torch_export", name="w")
    weights.framework = "safetensors"
    weights.save()
    result, _ = run_switch(worker, {"a": pending.pk, "b": weights.pk, "c": 999999})
    assert result["errors"] == {
        "a": "clf@1 is not deployable: its status is pending",
        "b": "framework safetensors has no runnable graph; upload ONNX, TorchScript or .pt2",
        "c": "version 999999 does not exist",
    }


def test_torch_models_switch_in_like_any_other(worker, owner, model_files, tmp_path):
    ts = torch_version(
        owner,
        model_files,
        tmp_path,
        kind="torchscript",
        name="ts",
        metadata={"inputs": [{"name": "input", "shape": ["b", 4], "dtype": "float32"}]},
    )
    pt2 = torch_version(owner, model_files, tmp_path, kind="torch_export", name="pt2")
    result, _ = run_switch(worker, {"policy": ts.pk, "pose": pt2.pk})
    assert result["ok"] is True and served(worker) == {"policy": "ts@1", "pose": "pt2@1"}


def test_repeated_switch_id_gets_the_first_result_without_switching_again(
    worker, owner, model_files, tmp_path
):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    first, _ = run_switch(worker, {"det": v1.pk}, "same")
    again, events = run_switch(worker, {"det": v1.pk}, "same")
    assert again == first and events == [first]


def test_failed_switch_unloads_what_it_loaded(worker, owner, model_files, tmp_path):
    good = onnx_version(owner, model_files, tmp_path, name="good")
    bad = gate_version(owner, name="bad", fail="cannot load")
    result, _ = run_switch(worker, {"a": good.pk, "b": bad.pk})
    assert result["ok"] is False and result["errors"] == {
        "b": "loading bad@1 failed: RuntimeError: cannot load"
    }
    eventually(lambda: worker.pool.entries() == [], what="the fresh good@1 unloaded")
    assert worker.pool.get(good.pk) is None and served(worker) == {}


def test_switching_back_to_a_draining_model_revives_it(worker, owner, model_files, tmp_path):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    run_switch(worker, {"det": v1.pk}, "a")
    held = worker.router.acquire("det")  # a request still running on clf@1
    run_switch(worker, {"det": v2.pk}, "b")
    assert held.state == DRAINING
    failed, _ = run_switch(worker, {"det": v1.pk, "x": gate_version(owner, fail="no").pk}, "c")
    assert failed["ok"] is False and held.state == DRAINING  # revived, then retired again
    result, events = run_switch(worker, {"det": v1.pk}, "d")
    assert result["slots"]["det"] == {"ref": "clf@1", "load_ms": 0.0, "warmup_ms": 0.0}
    assert [e.get("phase") for e in events if e["event"] == "phase"] == [
        "validating",
        "swapping",
        "unloading",
    ]
    worker.router.release(held)
    assert held.state == READY and served(worker) == {"det": "clf@1"}
    eventually(lambda: worker.pool.get(v2.pk) is None, what="clf@2 unloaded")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_torch_models_switch_on_the_gpu(make_worker, owner, model_files, tmp_path):
    from inference.device import DeviceInfo

    worker = make_worker(device=DeviceInfo("cuda:0", "gpu"))
    pt2 = torch_version(owner, model_files, tmp_path, kind="torch_export", name="pose")
    ts = torch_version(
        owner,
        model_files,
        tmp_path,
        kind="torchscript",
        name="pose2",
        metadata={"inputs": [{"name": "input", "shape": ["b", 4], "dtype": "float32"}]},
    )
    assert run_switch(worker, {"pose": pt2.pk}, "a")[0]["ok"]
    status = worker.status()
    assert status["memory"]["kind"] == "gpu" and status["device"] == "cuda:0"
    assert [m["provider"] for m in status["models"]] == ["cuda:0"]
    assert run_switch(worker, {"pose": ts.pk}, "b")[0]["ok"]
    eventually(
        lambda: [m["ref"] for m in worker.status()["models"]] == ["pose2@1"],
        what="pose@1 unloaded from the GPU",
    )
