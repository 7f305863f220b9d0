"""Several real workers on one S3 store: the fleet as the issue describes it (database,
channel layer and SeaweedFS together). Every worker fetches what it serves from S3 into
its own cache, verified by hash, and a switch to a version that fails that check on one
worker changes nothing on any of them."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from modelmgr.models import AuditEvent, Slot
from tests.api.helpers import stored_blobs
from tests.deploy.live import predict, switch
from tests.deploy.test_fleet_live import fleet, served
from tests.inference.support import make_slot, onnx_version
from tests.s3.test_s3_worker import cached_folder

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def first(s3_store, owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    make_slot("det", version)
    return version


def cached_sha256(worker, version) -> str | None:
    path = cached_folder(worker, version) / "model.onnx"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_every_worker_fetches_a_switched_version_from_s3_verified(
    api, settings, s3_store, owner, model_files, tmp_path, first
):
    second = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    sha = second.files.get().sha256
    assert stored_blobs() == []  # the bytes live in S3 only
    with fleet(settings, 2, env=s3_store.env()) as workers:
        assert [served(w, "det") for w in workers] == ["clf@1", "clf@1"]
        assert [cached_sha256(w, second) for w in workers] == [None, None]
        response = switch(api, {"det": "clf@2"})
        assert response.status_code == 200, response.content
        assert [served(w, "det") for w in workers] == ["clf@2", "clf@2"]
        # Each worker has its own verified copy, fetched from the store in phase 1.
        assert [cached_sha256(w, second) for w in workers] == [sha, sha]
        for _ in range(6):  # whichever worker the web picks, it serves the new version
            answer = predict(api, "det")
            assert answer.status_code == 200 and answer.json()["model"] == "clf@2"
    assert stored_blobs() == []
    assert AuditEvent.objects.get(action="slot.switch").after["workers"] == {
        "w1": "ok",
        "w2": "ok",
    }


def test_a_corrupted_object_in_s3_aborts_the_switch_on_every_worker(
    api, settings, s3_store, owner, model_files, tmp_path, first
):
    bad = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    sha = bad.files.get().sha256
    data = bytearray(s3_store.get(sha))
    data[len(data) // 2] ^= 0xFF
    s3_store.put(sha, bytes(data))
    with fleet(settings, 2, env=s3_store.env()) as workers:
        response = switch(api, {"det": "clf@2"})
        assert response.status_code == 409, response.content
        detail = response.json()["detail"]
        assert "model.onnx" in detail and "corrupt" in detail
        assert [served(w, "det") for w in workers] == ["clf@1", "clf@1"]
        assert [cached_sha256(w, bad) for w in workers] == [None, None]
        for worker in workers:  # nothing half-loaded stays behind
            models = httpx.get(f"{worker.url}/status", timeout=10).json()["models"]
            assert [m["ref"] for m in models if m["state"] == "ready"] == ["clf@1"]
        answer = predict(api, "det")
        assert answer.status_code == 200 and answer.json()["model"] == "clf@1"
    assert Slot.objects.get(name="det").active_version_id == first.pk
    audit = AuditEvent.objects.get(action="slot.switch")
    assert audit.outcome == "error" and "model.onnx" in audit.error
