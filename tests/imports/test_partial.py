"""The partial file of an import: resumed from what is on disk, one writer at a time."""

from __future__ import annotations

import hashlib
import threading

import pytest

from modelmgr.imports import partial as partial_module
from modelmgr.imports.partial import PartialBusy, PartialFile


def test_reopening_resumes_the_size_and_hash(tmp_path):
    first = PartialFile(tmp_path / "job.part")
    first.write(b"abc")
    first.close()
    second = PartialFile(tmp_path / "job.part")
    second.write(b"def")
    assert second.size == 6
    assert second.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    second.close()


def test_a_retry_cannot_append_while_the_cancelled_attempt_still_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(partial_module, "LOCK_WAIT_S", 0.2)
    cancelled = PartialFile(tmp_path / "job.part")
    cancelled.write(b"first chunk")
    with pytest.raises(PartialBusy, match="still being written"):
        PartialFile(tmp_path / "job.part")
    cancelled.write(b", last chunk")  # the write it was doing when the cancel landed
    cancelled.close()
    retry = PartialFile(tmp_path / "job.part")
    assert retry.size == len(b"first chunk, last chunk")
    retry.close()


def test_the_retry_waits_for_the_previous_writer_to_let_go(tmp_path):
    old = PartialFile(tmp_path / "job.part")
    old.write(b"x" * 10)
    threading.Timer(0.2, old.close).start()
    new = PartialFile(tmp_path / "job.part")  # blocks until the timer closes the old one
    assert new.size == 10
    new.close()
