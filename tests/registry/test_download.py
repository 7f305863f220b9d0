from __future__ import annotations

import io
import zipfile

import pytest

from modelmgr.exceptions import IntegrityFailure
from modelmgr.registry.download import ByteRange, Unsatisfiable, parse_range, zip_chunks
from modelmgr.storage import content_store
from tests.registry.factories import make_model, make_version


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=10-", ByteRange(10, 99)),
        ("bytes=-10", ByteRange(90, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=90-500", ByteRange(90, 99)),
        ("bytes=99-99", ByteRange(99, 99)),
        ("BYTES = 5-6", None),
        (None, None),
        ("items=0-1", None),
        ("bytes=0-1,5-6", None),
        ("bytes=9-3", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
def test_range_past_the_end_is_unsatisfiable(header):
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


def test_suffix_range_of_empty_file_is_unsatisfiable():
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-1", 0)


@pytest.mark.django_db
def test_zip_stream_round_trips_every_file(owner, settings):
    settings.MODELMGR_STREAM_CHUNK_BYTES = 7  # many chunks per file
    files = {"model.onnx": b"\x00onnx" * 50, "sub/dir/config.json": b"{}", "empty.txt": b""}
    version = make_version(make_model(owner, "det"), "1", files=files)
    data = b"".join(zip_chunks(version))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert {name: zf.read(name) for name in zf.namelist()} == files


@pytest.mark.django_db
def test_zip_stream_stops_at_a_corrupt_blob(owner):
    version = make_version(make_model(owner, "det"), "1", files={"w.bin": b"good bytes"})
    path = content_store().local_path(version.files.get().sha256)
    path.write_bytes(b"evil bytes")
    with pytest.raises(IntegrityFailure, match="no longer matches"):
        b"".join(zip_chunks(version))
