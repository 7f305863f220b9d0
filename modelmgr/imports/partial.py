"""The partial file of an import: appended across attempts and restarts, hashed as it grows.

A hash object cannot be saved, so reopening a partial re-reads its bytes once to carry
the sha256 on; that costs one sequential read of what is already there, far less than
downloading it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

from modelmgr.storage import StagedBlob, chunk_size, staging_dir

PREFIX = "import-"
# How long a new attempt waits for the previous writer of the same partial to let go.
LOCK_WAIT_S = 30.0


class PartialBusy(Exception):
    """Another attempt still has the partial file open."""


def partial_path_for(job_id: int) -> Path:
    return staging_dir() / f"{PREFIX}{job_id}.part"


class PartialFile:
    """Append-only writer over a file that may already hold the first bytes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._hash = hashlib.sha256()
        self.size = 0
        # "ab" never truncates: the bytes already there are the resume point.
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        try:
            self._lock()
            self._rehash()
        except BaseException:
            self._file.close()
            raise

    def _lock(self) -> None:
        """One writer at a time: a cancelled attempt can still be writing its last chunk
        when a retry starts; appending behind it would splice the file and the hash."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PartialBusy(f"{self.path.name} is still being written") from None
                time.sleep(0.05)

    def _rehash(self) -> None:
        step = chunk_size()
        with open(self.path, "rb") as existing:
            while data := existing.read(step):
                self._hash.update(data)
                self.size += len(data)

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def reset(self) -> None:
        """Start again from byte 0 (the source changed or ignored the range)."""
        self._file.truncate(0)
        self._file.seek(0)
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())
            self._file.close()

    def to_staged(self) -> StagedBlob:
        """Close and hand the bytes over as a staged blob (ingest moves or discards it)."""
        self.close()
        return StagedBlob(path=self.path, sha256=self.sha256, size=self.size)

    def remove(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def partial_remove(path: str | os.PathLike | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


def partial_size(path: str | os.PathLike | None) -> int:
    try:
        return Path(path).stat().st_size if path else 0
    except OSError:
        return 0
