"""The worker's profiler as one-step calls: a copy of its own beside the pool's entry,
batch sizes from the signature, bounded requests, the reservation given back, and a
hung load that does not hold the profiling lane."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import InsufficientMemory, InvalidInput, LoadTimeout
from inference.profile import ProfileBusy, Profiler
from inference.profile_steps import batch_inputs, is_dynamic_batch
from tests.inference import gate_runtime
from tests.inference.support import (
    ONNX_SIGNATURE,
    eventually,
    gate_version,
    onnx_version,
    waiting_loads,
)

pytestmark = pytest.mark.django_db

FIXED = {
    "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32"}],
}


def run(profiler: Profiler, payload: dict) -> tuple[dict, list[dict]]:
    events: list[dict] = []
    request = profiler.start(payload)
    try:
        return profiler.run(request, events.append), events
    finally:
        profiler.finish()


def test_the_batch_dimension_is_dynamic_only_when_every_input_leaves_it_open():
    assert is_dynamic_batch(ONNX_SIGNATURE) is True
    assert is_dynamic_batch(FIXED) is False
    assert is_dynamic_batch({"inputs": [{"name": "x", "shape": None, "dtype": "float32"}]}) is False
    arrays = batch_inputs(ONNX_SIGNATURE, 8, np.random.default_rng(0))
    assert arrays["x"].shape == (8, 4) and arrays["x"].dtype == np.float32
    assert batch_inputs(FIXED, 8, np.random.default_rng(0))["x"].shape == (1, 4)


def test_a_profile_runs_on_its_own_copy_and_leaves_the_pool_as_it_was(
    worker, owner, model_files, tmp_path
):
    version = onnx_version(owner, model_files, tmp_path)
    served = worker.load(version_id=version.pk)
    before = worker.pool.memory()
    profile, events = run(
        Profiler(worker), {"version_id": version.pk, "iterations": 3, "max_seconds": 2}
    )
    assert [r["batch_size"] for r in profile["results"]] == [1, 2, 4, 8]
    assert [e["batch_size"] for e in events if e["event"] == "batch"] == [1, 2, 4, 8]
    # The pool still holds exactly the entry it had, untouched, and nothing reserved.
    (entry,) = worker.pool.entries()
    assert entry.version_id == served["version_id"] and entry.state == "ready"
    assert worker.pool.memory().used_bytes == before.used_bytes


def test_one_profile_at_a_time_and_bounded_requests(worker, owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path, signature=FIXED)
    profiler = Profiler(worker)
    profiler.start({"version_id": version.pk})
    with pytest.raises(ProfileBusy, match="one profile at a time"):
        profiler.start({"version_id": version.pk})
    profiler.finish()
    for bad in ({"version_id": "1"}, {"version_id": version.pk, "iterations": 10**6}):
        with pytest.raises(InvalidInput):
            profiler.start(bad)
    with pytest.raises(InvalidInput, match="fixed batch"):
        run(profiler, {"version_id": version.pk, "batch_sizes": [4]})
    profile, _ = run(profiler, {"version_id": version.pk, "iterations": 2})
    assert profile["dynamic_batch"] is False and len(profile["results"]) == 1


def test_a_copy_that_does_not_fit_is_refused_without_evicting(worker, owner, model_files, tmp_path):
    cached = onnx_version(owner, model_files, tmp_path, name="cached")
    huge = onnx_version(owner, model_files, tmp_path, name="huge", min_vram_mb=10_000_000)
    worker.load(version_id=cached.pk)
    with pytest.raises(InsufficientMemory, match="needs 10000000 MB, .* MB free"):
        run(Profiler(worker), {"version_id": huge.pk})
    assert [e.version_id for e in worker.pool.entries()] == [cached.pk]
    assert worker.pool._reserved == 0  # the refusal reserved nothing


def test_a_hung_load_times_out_and_frees_the_profiling_lane(make_worker, owner, tmp_path):
    worker = make_worker(load_timeout=0.5)
    gate = tmp_path / "gate"
    version = gate_version(owner, name="hung", gate=gate)
    profiler = Profiler(worker)
    with pytest.raises(LoadTimeout, match="load of hung@1 timed out after 0.5 s"):
        run(profiler, {"version_id": version.pk})
    assert waiting_loads(gate) == 1  # the load is still stuck; the lane is free again
    assert profiler.start({"version_id": version.pk})["version_id"] == version.pk
    profiler.finish()
    gate.touch()
    eventually(lambda: "hung@1" in gate_runtime.UNLOADED, what="the late copy's unload")
    assert worker.pool.entries() == []
