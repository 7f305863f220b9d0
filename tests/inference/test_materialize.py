"""Materialize: version files laid out in the worker cache, sha256-checked on every use
(a stat when unchanged since this process hashed them)."""

from __future__ import annotations

import pytest

from inference import materialize
from inference.materialize import version_materialize
from inference.versions import version_spec_get
from modelmgr.exceptions import IntegrityFailure, NotFound
from modelmgr.storage import content_store
from tests.inference.support import corrupt, onnx_version, registered
from tests.modelfiles import build_onnx_external_data
from tests.registry.factories import make_version

pytestmark = pytest.mark.django_db


def test_files_are_hardlinked_from_the_local_store(owner, model_files, tmp_path, settings):
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    folder = version_materialize(spec=spec)
    assert folder == settings.MODELMGR_WORKER_CACHE_DIR / spec.content_hash
    blob = content_store().local_path(version.primary_file.sha256)
    assert (folder / "model.onnx").stat().st_ino == blob.stat().st_ino


def test_files_are_copied_when_they_cannot_be_linked(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    folder = version_materialize(spec=version_spec_get(version_id=version.pk), link=False)
    blob = content_store().local_path(version.primary_file.sha256)
    assert (folder / "model.onnx").stat().st_ino != blob.stat().st_ino
    assert (folder / "model.onnx").read_bytes() == blob.read_bytes()


@pytest.mark.parametrize("link", [True, False])
def test_corrupt_blob_fails_naming_the_artifact_and_leaves_nothing(
    owner, model_files, tmp_path, settings, link
):
    version = onnx_version(owner, model_files, tmp_path)
    corrupt(version)
    with pytest.raises(
        IntegrityFailure, match=r"^artifact model.onnx of clf@1 is corrupt \(sha256 mismatch\)$"
    ):
        version_materialize(spec=version_spec_get(version_id=version.pk), link=link)
    assert list(settings.MODELMGR_WORKER_CACHE_DIR.iterdir()) == []


def test_missing_blob_is_named(owner, model_files, tmp_path, settings):
    version = onnx_version(owner, model_files, tmp_path)
    content_store().delete(version.primary_file.sha256)
    with pytest.raises(
        NotFound, match="artifact model.onnx of clf@1 is missing from the artifact store"
    ):
        version_materialize(spec=version_spec_get(version_id=version.pk))
    assert list(settings.MODELMGR_WORKER_CACHE_DIR.iterdir()) == []


@pytest.fixture
def hashes(monkeypatch) -> list[int]:
    """How many files were read through sha256; a memo of this test's own."""
    monkeypatch.setattr(materialize, "_memo", {})
    counted: list[int] = []
    real = materialize._hash_stream

    def counting(reader, out):
        counted.append(1)
        return real(reader, out)

    monkeypatch.setattr(materialize, "_hash_stream", counting)
    return counted


def test_copied_folder_is_reused_while_its_files_are_intact(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    first = version_materialize(spec=spec, link=False)
    assert version_materialize(spec=spec, link=False) == first


def test_an_intact_copy_does_not_hide_a_damaged_store_blob(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    version_materialize(spec=spec, link=False)
    corrupt(version)  # the store's blob, not the copy the worker reads
    with pytest.raises(IntegrityFailure, match="model.onnx of clf@1 is corrupt"):
        version_materialize(spec=spec, link=False)


def test_blob_corrupted_after_first_use_fails_the_next_use_naming_the_file(
    owner, model_files, tmp_path, settings
):
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    version_materialize(spec=spec)  # hardlinks: the cached file is the stored blob
    corrupt(version)
    with pytest.raises(
        IntegrityFailure, match=r"^artifact model.onnx of clf@1 is corrupt \(sha256 mismatch\)$"
    ):
        version_materialize(spec=spec)
    assert list(settings.MODELMGR_WORKER_CACHE_DIR.iterdir()) == []


def test_damaged_copy_is_built_again_from_the_intact_store(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    folder = version_materialize(spec=spec, link=False)
    cached = folder / "model.onnx"
    cached.write_bytes(b"\0" * cached.stat().st_size)
    assert version_materialize(spec=spec, link=False) == folder
    assert (
        cached.read_bytes() == content_store().local_path(version.primary_file.sha256).read_bytes()
    )


def test_file_unchanged_since_it_was_hashed_is_not_hashed_again(
    owner, model_files, tmp_path, monkeypatch, hashes
):
    monkeypatch.setattr(materialize, "RACY_S", 0.0)  # the blob was written a moment ago
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    version_materialize(spec=spec)
    version_materialize(spec=spec)
    version_materialize(spec=spec)
    assert len(hashes) == 1


def test_file_written_just_before_its_hash_is_hashed_on_every_use(
    owner, model_files, tmp_path, hashes
):
    """Within RACY_S of a write, a later write in the same timestamp tick would leave size,
    mtime and ctime alone: such a file is not remembered."""
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    version_materialize(spec=spec)
    version_materialize(spec=spec)
    assert len(hashes) == 2


def test_nested_files_keep_their_layout(owner, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    build_onnx_external_data(folder)
    version = make_version(
        registered(owner, "ext"),
        "1",
        primary="onnx/model.onnx",
        framework="onnx",
        files={
            "onnx/model.onnx": (folder / "model.onnx").read_bytes(),
            "onnx/weights.bin": (folder / "weights.bin").read_bytes(),
        },
    )
    out = version_materialize(spec=version_spec_get(version_id=version.pk))
    assert (out / "onnx" / "model.onnx").is_file() and (out / "onnx" / "weights.bin").is_file()
