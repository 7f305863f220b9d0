"""Per-block sha256 of blobs, so that part of a blob is checked without reading all of it.

A blob's sha256 covers all of it: checking a Range against it means reading the whole
blob (on S3, fetching gigabytes to resume one download). So the sha256 of every
``MODELMGR_RANGE_BLOCK_BYTES`` block is recorded in a ``BlobBlocks`` row, and a Range is
served from the blocks that cover it, each checked as it streams
(``modelmgr.registry.download``): at most two blocks more than asked are read.

- The S3 store records them when it uploads a blob (the upload is bound by the network;
  a second hash pass costs nothing there).
- Any other blob gets them from the first Range (or verify) that hashes it whole and
  finds it intact: the local store's upload stays one hash pass.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from django.db import DatabaseError, connection

from modelmgr.models import BlobBlocks

log = logging.getLogger(__name__)


class BlockHasher:
    """Feeds bytes in order and collects the sha256 of each ``block_bytes`` block;
    ``on_block(index, digest)`` is called as each block closes."""

    def __init__(
        self, block_bytes: int, on_block: Callable[[int, bytes], None] | None = None
    ) -> None:
        self.block_bytes = block_bytes
        self._on_block = on_block
        self._digests: list[bytes] = []
        self._current = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(self.block_bytes - self._filled, len(view))
            self._current.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.block_bytes:
                self._close_block()

    def _close_block(self) -> None:
        digest = self._current.digest()
        if self._on_block is not None:
            self._on_block(len(self._digests), digest)
        self._digests.append(digest)
        self._current = hashlib.sha256()
        self._filled = 0

    def digests(self) -> bytes:
        """Every block's digest, the last (short) block's included."""
        if self._filled:
            self._close_block()
        return b"".join(self._digests)


def record(sha256: str, block_bytes: int, digests: bytes) -> None:
    """Keep a blob's block digests. Only called once the whole blob hashed to ``sha256``,
    so an existing row (same bytes, maybe another block size) is as right: it stays."""
    BlobBlocks.objects.bulk_create(
        [BlobBlocks(sha256=sha256, block_bytes=block_bytes, digests=digests)],
        ignore_conflicts=True,
    )


def record_from_stream(sha256: str, block_bytes: int, digests: bytes) -> None:
    """``record`` from a download's chunk iterator, which the web process runs in a pool
    thread. A failure is only logged: the download it rides on is fine, and the next
    range records them. Outside a transaction, that thread's connection is closed again
    (Django closes connections at the end of a request, in the request's own thread)."""
    try:
        record(sha256, block_bytes, digests)
    except DatabaseError:
        log.warning("could not record the block digests of %s", sha256, exc_info=True)
    finally:
        if not connection.in_atomic_block:
            connection.close()


def blocks_of(sha256: str, size: int) -> BlobBlocks | None:
    """The recorded block digests of a blob of ``size`` bytes, or None."""
    row = BlobBlocks.objects.filter(sha256=sha256).first()
    return row if row is not None and row.covers(size) else None


def recorded(sha256: str) -> bool:
    return BlobBlocks.objects.filter(sha256=sha256).exists()


def forget(sha256: str) -> None:
    BlobBlocks.objects.filter(sha256=sha256).delete()
