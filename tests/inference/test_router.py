"""The routing table: atomic swaps, and models held by requests survive them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from inference.errors import NotServed
from inference.pool import DRAINING, READY, UNLOADED
from tests.inference.support import eventually, onnx_version

pytestmark = pytest.mark.django_db
X = np.ones((1, 4), dtype=np.float32)


def loaded(worker, version):
    from inference.versions import version_spec_get

    spec = version_spec_get(version_id=version.pk)
    return worker.pool.load(spec, signature=spec.signature_for(None))[0]


def test_swap_keeps_the_old_model_while_a_request_holds_it(worker, owner, model_files, tmp_path):
    old = loaded(worker, onnx_version(owner, model_files, tmp_path, version="1"))
    new = loaded(worker, onnx_version(owner, model_files, tmp_path, version="2", seed=1))
    worker.router.swap({"det": old})
    held = worker.router.acquire("det")
    worker.router.swap({"det": new})
    assert worker.router.acquire("det") is new
    worker.router.release(new)
    assert held is old and old.state == DRAINING and old.model.session is not None
    assert held.model.infer({"x": X})["y"].shape == (1, 2)  # the held request finishes
    worker.router.release(held)
    eventually(lambda: old.state == UNLOADED, what="the drained model's unload")
    assert old.model.session is None and new.state == READY


def test_swap_replaces_several_slots_in_one_step(worker, owner, model_files, tmp_path):
    a = loaded(worker, onnx_version(owner, model_files, tmp_path, version="1"))
    b = loaded(worker, onnx_version(owner, model_files, tmp_path, version="2", seed=1))
    worker.router.swap({"left": a, "right": a})
    before = worker.router.table
    replaced = worker.router.swap({"left": b, "right": b})
    assert {s: r.entry for s, r in before.items()} == {"left": a, "right": a}
    assert {s: r.entry for s, r in worker.router.table.items()} == {"left": b, "right": b}
    assert replaced == {"left": a, "right": a}
    eventually(lambda: a.state == UNLOADED, what="the replaced model's unload")


def test_model_still_serving_another_slot_is_not_unloaded(worker, owner, model_files, tmp_path):
    a = loaded(worker, onnx_version(owner, model_files, tmp_path, version="1"))
    b = loaded(worker, onnx_version(owner, model_files, tmp_path, version="2", seed=1))
    worker.router.swap({"left": a, "right": a})
    worker.router.swap({"left": b})
    assert a.state == READY and worker.router.table["right"].entry is a


def test_unserved_slot_is_refused_and_removing_a_slot_drains_it(
    worker, owner, model_files, tmp_path
):
    with pytest.raises(NotServed, match="^slot det is not served$"):
        worker.router.acquire("det")
    entry = loaded(worker, onnx_version(owner, model_files, tmp_path))
    worker.router.swap({"det": entry})
    worker.router.swap({"det": None})
    with pytest.raises(NotServed):
        worker.router.acquire("det")
    eventually(lambda: entry.state == UNLOADED, what="the unserved model's unload")


def test_threads_calling_through_repeated_swaps_never_fail(worker, owner, model_files, tmp_path):
    """Eight threads infer while the slot is swapped 100 times between two versions that
    are loaded again (or revived while draining) at each swap."""
    from inference.versions import version_spec_get

    specs = [
        version_spec_get(
            version_id=onnx_version(owner, model_files, tmp_path, version=str(i), seed=i).pk
        )
        for i in (1, 2)
    ]
    worker.router.swap({"det": worker.pool.load(specs[0], signature={})[0]})
    stop, failures, served = threading.Event(), [], []

    def client():
        while not stop.is_set():
            try:
                entry, outputs, _ = worker.infer_blocking("det", {"x": X})
                served.append(entry.version_id)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for i in range(100):
            spec = specs[(i + 1) % 2]
            worker.router.swap({"det": worker.pool.load(spec, signature={})[0]})
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert {s.id for s in specs} <= set(served)
    eventually(
        lambda: [e.ref for e in worker.pool.entries()] == ["clf@1"],
        what="only the served version left loaded",
    )
