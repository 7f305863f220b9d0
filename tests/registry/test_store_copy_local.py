"""manage.py store_copy into a local folder (the way back from S3 ends there too; the
S3 side is in tests/s3/test_store_copy.py): blobs arrive intact by rename from a staging
file beside them, a corrupt one is named and not copied, bad destinations are refused."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command

from modelmgr.storage import content_store
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("store_copy", *args, stdout=out, stderr=out)
    return out.getvalue()


def blob(folder, data: bytes):
    digest = hashlib.sha256(data).hexdigest()
    return folder / "sha256" / digest[:2] / digest[2:4] / digest


def test_a_local_store_copies_to_another_folder_once(owner, isolated_storage, tmp_path):
    model = make_model(owner, "clf")
    make_version(model, "1", files={"model.onnx": b"one", "labels.txt": b"a\nb\n"})
    make_version(model, "2", files={"model.onnx": b"two", "labels.txt": b"a\nb\n"})
    dest = tmp_path / "elsewhere"
    said = run(str(dest))
    assert f"copied 3 blob(s) (10 bytes) to {dest}; 0 already there; 0 failed" in said
    for data in (b"one", b"two", b"a\nb\n"):
        assert blob(dest, data).read_bytes() == data
        assert blob(isolated_storage, data).read_bytes() == data  # the source stays
    assert "copied 0 blob(s) (0 bytes)" in run(str(dest)) and "3 already there" in run(str(dest))


def test_a_corrupt_blob_is_named_and_not_copied(owner, isolated_storage, tmp_path):
    model = make_model(owner, "clf")
    make_version(model, "1", files={"model.onnx": b"good bytes"})
    bad = make_version(model, "2", files={"model.onnx": b"will rot"})
    content_store().local_path(bad.primary_file.sha256).write_bytes(b"has rotted")
    dest = tmp_path / "elsewhere"
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 blob"):
        call_command("store_copy", str(dest), stdout=out, stderr=out)
    assert f"failed: blob {bad.primary_file.sha256} (clf@2:model.onnx)" in out.getvalue()
    assert blob(dest, b"good bytes").exists()
    assert not (dest / "sha256" / bad.primary_file.sha256[:2]).exists()
    assert list((dest / ".staging").iterdir()) == []


def test_bad_local_destinations_are_refused_with_a_reason(isolated_storage, tmp_path):
    with pytest.raises(CommandError, match="absolute folder path"):
        run("relative/folder")
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    with pytest.raises(CommandError, match="is a file, not a folder"):
        run(str(afile))
    with pytest.raises(CommandError, match="is the configured store already"):
        run(str(isolated_storage))


def test_a_folder_that_cannot_be_written_stops_with_its_reason(owner, isolated_storage, tmp_path):
    make_version(make_model(owner, "clf"), "1")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / ".staging").write_bytes(b"not a folder")  # as a read-only disk would
    with pytest.raises(CommandError, match="the copy stopped: .*File exists"):
        run(str(locked))
