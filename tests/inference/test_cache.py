"""The worker cache keeps what the registry or a loaded model still uses, and nothing else."""

from __future__ import annotations

import os
import time

import pytest

from inference.cache import STALE_BUILDING_S, cache_prune
from inference.device import DeviceInfo
from inference.materialize import version_materialize
from inference.versions import version_spec_get
from inference.worker import Worker
from modelmgr.registry.services import version_delete
from modelmgr.storage import content_store
from tests.inference.support import onnx_version

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_cache(settings, tmp_path):
    """A cache of this test's own: other tests' folders would be pruned too."""
    settings.MODELMGR_WORKER_CACHE_DIR = tmp_path / "worker-cache"


def test_a_deleted_versions_folder_goes_and_with_it_the_blobs_disk_space(
    owner, model_files, tmp_path, settings
):
    kept = onnx_version(owner, model_files, tmp_path, version="1", seed=1)
    gone = onnx_version(owner, model_files, tmp_path, version="2", seed=2)
    kept_folder = version_materialize(spec=version_spec_get(version_id=kept.pk))
    gone_folder = version_materialize(spec=version_spec_get(version_id=gone.pk))
    blob = content_store().local_path(gone.primary_file.sha256)
    inode = blob.stat().st_ino
    assert (gone_folder / "model.onnx").stat().st_ino == inode  # a hardlink of the blob

    version_delete(version=gone, actor=owner)
    assert not blob.exists()  # the store let go of it; the cache link still holds the bytes
    assert (gone_folder / "model.onnx").stat().st_nlink == 1

    report = cache_prune(in_use=set())
    assert report.removed == [gone_folder.name]
    assert report.bytes_removed == len(model_files.onnx(tmp_path / "x.onnx", seed=2).read_bytes())
    assert not gone_folder.exists()
    assert (kept_folder / "model.onnx").is_file()
    assert cache_prune(in_use=set()).removed == []


def test_a_loaded_model_keeps_its_folder_even_after_its_version_is_deleted(
    owner, model_files, tmp_path
):
    version = onnx_version(owner, model_files, tmp_path)
    worker = Worker(device=DeviceInfo("cpu", "test cpu"))
    try:
        worker.load(version_id=version.pk)
        folder = version_materialize(spec=version_spec_get(version_id=version.pk))
        version_delete(version=version, actor=owner)
        assert worker.prune_cache().removed == []
        assert folder.is_dir()
        worker.unload(version_id=version.pk)
        assert worker.prune_cache().removed == [folder.name]
    finally:
        worker.stop(drain_timeout=5)


def test_only_stale_half_built_folders_are_removed(settings):
    root = settings.MODELMGR_WORKER_CACHE_DIR
    root.mkdir(parents=True, exist_ok=True)
    fresh = root / ".building-aaaa-1"
    stale = root / ".building-bbbb-2"
    for folder in (fresh, stale):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"half")
    old = time.time() - STALE_BUILDING_S - 60
    os.utime(stale, (old, old))
    report = cache_prune(in_use=set())
    assert report.removed == [stale.name]
    assert fresh.is_dir() and not stale.exists()
