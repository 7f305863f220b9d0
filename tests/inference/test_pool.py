"""The model pool: loads with timings, memory budget, LRU eviction, pinning, timeouts."""

from __future__ import annotations

import pytest

from inference.device import DeviceInfo
from inference.errors import InsufficientMemory, LoadFailed, LoadTimeout
from inference.pool import READY, UNLOADED, ModelPool
from inference.versions import version_spec_get
from modelmgr.exceptions import NotDeployable
from tests.inference import gate_runtime
from tests.inference.support import (
    eventually,
    gate_version,
    onnx_version,
    torch_version,
    waiting_loads,
)

pytestmark = pytest.mark.django_db
CPU = DeviceInfo("cpu", "test cpu")


def spec_of(version):
    return version_spec_get(version_id=version.pk)


def load(pool, version, **kwargs):
    spec = spec_of(version)
    return pool.load(spec, signature=spec.signature_for(None), **kwargs)[0]


@pytest.fixture
def pool():
    pool = ModelPool(device=CPU, load_timeout=60)
    yield pool
    pool.close(timeout=5)


def test_load_records_timings_provider_and_usage(pool, owner, model_files, tmp_path):
    entry = load(pool, onnx_version(owner, model_files, tmp_path))
    assert entry.state == READY and entry.runtime == "onnxruntime"
    assert entry.model.provider == "CPUExecutionProvider"
    assert entry.load_ms > 0 and entry.warmup_ms > 0
    assert entry.last_used >= entry.loaded_at and entry.in_flight == 0
    assert pool.memory().used_bytes == entry.memory_bytes


def test_loading_a_loaded_version_reuses_it(pool, owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    first, fresh = pool.load(spec_of(version), signature={})
    again, fresh_again = pool.load(spec_of(version), signature={})
    assert again is first and fresh and not fresh_again


def test_model_that_does_not_fit_is_refused_with_the_numbers(
    pool, owner, model_files, tmp_path, settings
):
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 64
    version = onnx_version(owner, model_files, tmp_path, min_vram_mb=100)
    with pytest.raises(
        InsufficientMemory, match=r"^clf@1 needs 100 MB, 64 MB free of 64 MB budget$"
    ):
        load(pool, version)
    assert pool.entries() == [] and pool.memory().used_bytes == 0


def test_least_recently_used_unserved_model_is_evicted_first(
    pool, owner, model_files, tmp_path, settings
):
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 100
    served, older, newer, incoming = (
        onnx_version(owner, model_files, tmp_path, name=n, min_vram_mb=30)
        for n in ("served", "older", "newer", "incoming")
    )
    served_entry = load(pool, served)
    pool.served_ids = lambda: {served_entry.version_id}
    older_entry = load(pool, older)
    newer_entry = load(pool, newer)
    served_entry.last_used = older_entry.last_used - 100  # served: never a victim
    newer_entry.last_used = older_entry.last_used + 100
    load(pool, incoming)
    assert older_entry.state == UNLOADED
    assert {e.ref for e in pool.entries()} == {"served@1", "newer@1", "incoming@1"}


def test_pinned_model_is_never_evicted(pool, owner, model_files, tmp_path, settings):
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 70
    pinned, other, incoming = (
        onnx_version(owner, model_files, tmp_path, name=n, min_vram_mb=30)
        for n in ("pinned", "other", "incoming")
    )
    pinned_entry = load(pool, pinned, pin=True)
    other_entry = load(pool, other)
    pinned_entry.last_used = other_entry.last_used - 100
    load(pool, incoming, pin=True)
    assert pinned_entry.state == READY and other_entry.state == UNLOADED
    with pytest.raises(InsufficientMemory, match=r"needs 30 MB, 10 MB free of 70 MB budget"):
        load(pool, onnx_version(owner, model_files, tmp_path, name="late", min_vram_mb=30))


def test_a_model_eviction_cannot_make_room_for_is_refused_and_evicts_nothing(
    pool, owner, model_files, tmp_path, settings
):
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 100
    cached = [
        load(pool, onnx_version(owner, model_files, tmp_path, name=n, min_vram_mb=30))
        for n in ("one", "two")
    ]
    huge = onnx_version(owner, model_files, tmp_path, name="huge", min_vram_mb=120)
    with pytest.raises(
        InsufficientMemory,
        match=r"^huge@1 needs 120 MB, 40 MB free of 100 MB budget "
        r"\(unloading every model no slot serves would free only 60 MB more\)$",
    ):
        load(pool, huge)
    assert all(entry.state == READY for entry in cached)


def test_without_a_declared_size_the_estimate_is_the_artifact_times_the_factor(
    owner, model_files, tmp_path, settings
):
    version = onnx_version(owner, model_files, tmp_path)
    spec = spec_of(version)
    pool = ModelPool(device=CPU, memory_factor=2.5)
    try:
        assert spec.size_bytes > 0
        assert pool.estimate(spec) == int(spec.size_bytes * 2.5)
        # A budget just under that estimate refuses it, naming the estimate.
        settings.MODELMGR_WORKER_RAM_BUDGET_MB = 0.9 * spec.size_bytes * 2.5 / 1024**2
        with pytest.raises(InsufficientMemory, match=r"^clf@1 needs "):
            load(pool, version)
        settings.MODELMGR_WORKER_RAM_BUDGET_MB = 1.1 * spec.size_bytes * 2.5 / 1024**2
        assert load(pool, version).state == READY
    finally:
        pool.close(timeout=5)


def test_hung_load_times_out_and_its_late_result_is_discarded(owner, tmp_path):
    pool = ModelPool(device=CPU, load_timeout=0.5)
    gate = tmp_path / "gate"
    version = gate_version(owner, name="hung", gate=gate)
    with pytest.raises(LoadTimeout, match=r"^load of hung@1 timed out after 0.5 s$"):
        load(pool, version)
    assert waiting_loads(gate) == 1  # the load thread is still stuck
    assert pool.memory().used_bytes == 0
    gate.touch()
    eventually(lambda: "hung@1" in gate_runtime.UNLOADED, what="the late model's unload")
    assert pool.get(version.pk) is None and pool.entries() == []
    pool.close(timeout=5)


def test_failed_warm_up_unloads_the_model_and_names_the_version(pool, owner):
    version = gate_version(owner, name="boom", fail_infer="kernel exploded")
    with pytest.raises(
        LoadFailed,
        match=r"^warm-up of boom@1 failed: RuntimeError: kernel "
        r"exploded$",
    ):
        load(pool, version)
    assert "boom@1" in gate_runtime.UNLOADED and pool.entries() == []


def test_runtime_error_during_load_names_the_version(pool, owner):
    with pytest.raises(LoadFailed, match=r"^loading bad@1 failed: RuntimeError: no such op$"):
        load(pool, gate_version(owner, name="bad", fail="no such op"))
    assert pool.memory().used_bytes == 0


def test_pickled_module_is_refused_unless_an_administrator_trusted_it(
    pool, owner, model_files, tmp_path
):
    version = torch_version(owner, model_files, tmp_path, kind="pytorch_pickle", unsafe=True)
    with pytest.raises(
        NotDeployable,
        match="tnet@1 is a pickled .unsafe. artifact; an administrator must mark it trusted",
    ):
        load(pool, version)
    version.trusted = True
    version.metadata = {"inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]}
    version.save()
    entry = load(pool, version)
    assert entry.model.warmup_note == "" and entry.runtime == "pytorch_pickle"


def test_unload_of_an_idle_model_releases_it(pool, owner, model_files, tmp_path):
    entry = load(pool, onnx_version(owner, model_files, tmp_path))
    pool.unload(entry.version_id)
    assert entry.state == UNLOADED and entry.model.session is None
    assert pool.memory().used_bytes == 0
