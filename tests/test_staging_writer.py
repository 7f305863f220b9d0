"""StagingWriter: the pipelined writer (uploads) stages the same bytes and hash as inline."""

from __future__ import annotations

import hashlib
import os

import pytest

from modelmgr.exceptions import UploadTooLarge
from modelmgr.storage import StagingWriter
from tests.api.helpers import staged_files


@pytest.mark.parametrize("pipelined", [False, True])
def test_staged_bytes_and_hash_match_what_was_written(pipelined):
    chunks = [os.urandom(n) for n in (1, 1024 * 1024, 7, 3 * 1024 * 1024 + 5, 0, 11)]
    writer = StagingWriter(pipelined=pipelined)
    for chunk in chunks:
        writer.write(chunk)
    staged = writer.finish()
    whole = b"".join(chunks)
    assert staged.path.read_bytes() == whole
    assert staged.sha256 == hashlib.sha256(whole).hexdigest() and staged.size == len(whole)
    staged.discard()


@pytest.mark.parametrize("pipelined", [False, True])
def test_passing_the_limit_removes_the_file(pipelined):
    writer = StagingWriter(limit=10, pipelined=pipelined)
    writer.write(b"12345")
    with pytest.raises(UploadTooLarge):
        writer.write(b"123456")
    assert staged_files() == []


def test_aborting_a_pipelined_writer_leaves_nothing():
    writer = StagingWriter(pipelined=True)
    for _ in range(10):
        writer.write(os.urandom(100_000))
    writer.abort()
    assert staged_files() == [] and not writer._thread.is_alive()
