"""A real worker serves versions whose bytes live only in S3, fetched into its cache."""

from __future__ import annotations

import hashlib

import pytest

from modelmgr.storage import version_content_hash
from tests.api.helpers import stored_blobs
from tests.inference.support import GATE_RUNTIMES, make_slot, onnx_version
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUIET = {
    "MODELMGR_WORKER_RUNTIMES": ",".join(GATE_RUNTIMES),
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
}


def cached_folder(worker, version):
    content_hash = version_content_hash((f.path, f.sha256) for f in version.files.all())
    return worker.tmp / "cache" / content_hash


def test_a_worker_serves_a_model_that_lives_only_in_s3_and_caches_it_verified(
    s3_store, owner, model_files, tmp_path
):
    version = onnx_version(owner, model_files, tmp_path)
    make_slot("det", version)
    sha = version.files.get().sha256
    assert stored_blobs() == [] and s3_store.keys() == [s3_store.key(sha)]
    with start_worker(env={**QUIET, **s3_store.env()}) as worker, worker.client() as client:
        worker.wait_ready()
        answer = client.post("/infer/det", json={"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}})
        assert answer.status_code == 200, answer.text + worker.logs()[-2000:]
        assert answer.json()["model"] == "clf@1"
        cached = cached_folder(worker, version) / "model.onnx"
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha


def test_a_corrupted_object_is_refused_by_hash_and_nothing_is_cached(
    s3_store, owner, model_files, tmp_path
):
    good = onnx_version(owner, model_files, tmp_path)
    make_slot("det", good)
    bad = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    sha = bad.files.get().sha256
    data = bytearray(s3_store.get(sha))
    data[len(data) // 2] ^= 0xFF
    s3_store.put(sha, bytes(data))
    with start_worker(env={**QUIET, **s3_store.env()}) as worker, worker.client() as client:
        worker.wait_ready()
        answer = client.post("/load", json={"version_id": bad.pk})
        assert answer.status_code >= 400, answer.text
        detail = answer.json()["detail"]
        assert "model.onnx" in detail and "corrupt" in detail and "clf@2" in detail
        cache = worker.tmp / "cache"
        assert not cached_folder(worker, bad).exists()
        assert [p.name for p in cache.iterdir() if p.name.startswith(".building")] == []
        # the intact version still serves
        served = client.post("/infer/det", json={"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}})
        assert served.status_code == 200
