"""Materialize: version files laid out in the worker cache, sha256-checked once."""

from __future__ import annotations

import pytest

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


def test_materialized_folder_is_reused_without_hashing_again(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path)
    spec = version_spec_get(version_id=version.pk)
    first = version_materialize(spec=spec, link=False)
    corrupt(version)  # only a fresh build would read (and hash) the blob again
    assert version_materialize(spec=spec, link=False) == first


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
