"""StagingWriter: the pipelined writer (uploads) stages the same bytes and hash as inline."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.test import override_settings

from modelmgr.exceptions import UploadTooLarge
from modelmgr.staging_pipeline import BUFFER_BYTES, BUFFERS, HashingPipeline
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
    assert staged_files() == [] and not writer._pipeline.alive


# The pipelined writer writes through O_DIRECT where the filesystem takes it (the test
# staging folder is on the disk), buffered where it does not. Either way the staged
# bytes and hash are exact: sizes below one page, a whole number of pipeline buffers,
# and a buffer boundary with an unaligned tail.
SIZES = [1, 4095, 4096, BUFFER_BYTES, 2 * BUFFER_BYTES + 4096 + 3]


@pytest.mark.parametrize("size", SIZES)
def test_direct_writes_stage_exact_bytes(size):
    payload = os.urandom(size)
    writer = StagingWriter(pipelined=True)
    assert writer._pipeline.direct, "the staging folder's filesystem should take O_DIRECT"
    for start in range(0, size, 1_000_003):  # pieces that never line up with pages
        writer.write(payload[start : start + 1_000_003])
    staged = writer.finish()
    assert staged.path.read_bytes() == payload and staged.size == size
    assert staged.sha256 == hashlib.sha256(payload).hexdigest()
    staged.discard()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm")
def test_tmpfs_staging_gets_exact_bytes_too():
    # tmpfs takes O_DIRECT since Linux 6.6 and refused it before: exact bytes either way.
    folder = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        payload = os.urandom(BUFFER_BYTES + 12345)
        writer = StagingWriter(pipelined=True, directory=folder)
        writer.write(payload)
        staged = writer.finish()
        assert staged.path.read_bytes() == payload
        assert staged.sha256 == hashlib.sha256(payload).hexdigest()
    finally:
        shutil.rmtree(folder)


@override_settings(MODELMGR_STAGING_DIRECT_IO=False)
def test_direct_io_can_be_switched_off():
    writer = StagingWriter(pipelined=True)
    assert not writer._pipeline.direct
    writer.write(b"x" * 5000)
    assert writer.finish().path.read_bytes() == b"x" * 5000


def test_a_write_error_reaches_the_caller_and_nothing_hangs():
    # A pipe whose reader is gone: every write fails (EPIPE) in the writing thread.
    read_end, write_end = os.pipe()
    os.close(read_end)
    pipeline = HashingPipeline(write_end, direct=False)
    try:
        with pytest.raises(BrokenPipeError):
            # More than the pool holds: the caller must get the error, not wait forever
            # for a buffer.
            for _ in range(4 * BUFFERS):
                pipeline.write(os.urandom(BUFFER_BYTES))
            pipeline.finish()
        pipeline.close()  # what the staging writer does on the error: both threads end
        assert not pipeline.alive
    finally:
        pipeline.close()
        os.close(write_end)
