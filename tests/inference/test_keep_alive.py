"""Keep-alive in the worker (inference.keep_alive): an idle language model that no slot
serves and nobody pinned is unloaded after its keep-alive; nothing else is."""

from __future__ import annotations

import time

import pytest

from inference.entry import READY
from inference.keep_alive import expiry, keep_alive_set, keep_alive_sweep
from tests.inference.support import llm_version, make_slot, onnx_version

pytestmark = pytest.mark.django_db
LATER = time.time() + 10**6


def loaded(worker) -> list[str]:
    return sorted(e.ref for e in worker.pool.entries() if e.state == READY)


def test_only_idle_unserved_unpinned_language_models_expire(
    worker, owner, llama_files, model_files, tmp_path, settings
):
    settings.MODELMGR_LLM_KEEP_ALIVE = 300.0
    served = llm_version(owner, llama_files, tmp_path, name="served")
    make_slot("chat", served)
    worker.reconcile_once()
    idle = llm_version(owner, llama_files, tmp_path, name="idle")
    pinned = llm_version(owner, llama_files, tmp_path, name="kept")
    busy = llm_version(owner, llama_files, tmp_path, name="busy")
    forever = llm_version(owner, llama_files, tmp_path, name="always", keep_alive_s=-1)
    tensor = onnx_version(owner, model_files, tmp_path)
    for version in (idle, pinned, busy, forever, tensor):
        worker.load(version_id=version.pk, pin=version is pinned)
    entry = worker.pool.get(idle.pk)
    when, why = expiry(entry, served=worker.router.served_ids())
    assert why == "keep_alive" and when == pytest.approx(entry.last_used + 300)
    assert expiry(worker.pool.get(served.pk), served=worker.router.served_ids()) == (None, "slot")
    assert worker.pool.try_acquire(worker.pool.get(busy.pk))  # a request holds it

    assert keep_alive_sweep(worker, now=time.time()) == []  # nothing idle long enough
    assert keep_alive_sweep(worker, now=LATER) == ["idle@1"]
    assert loaded(worker) == ["always@1", "busy@1", "clf@1", "kept@1", "served@1"]

    # The request that held it ends: its keep-alive starts then.
    busy_entry = worker.pool.get(busy.pk)
    worker.pool.release(busy_entry)
    assert keep_alive_sweep(worker, now=time.time()) == []
    assert keep_alive_sweep(worker, now=LATER) == ["busy@1"]
    # A request's keep_alive replaces the version's for the loaded copy.
    always = worker.pool.get(forever.pk)
    keep_alive_set(always, 0.0)
    assert keep_alive_sweep(worker, now=time.time() + 0.001) == ["always@1"]
    assert loaded(worker) == ["clf@1", "kept@1", "served@1"]
    assert "language_model" not in worker.describe(worker.pool.get(tensor.pk))
    described = worker.describe(worker.pool.get(pinned.pk))["language_model"]
    assert described["kept_by"] == "pinned" and described["context_length"] == 256
