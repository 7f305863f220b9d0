"""Block digests (modelmgr.blocks) are the same however the bytes arrive."""

from __future__ import annotations

import hashlib
import random

from modelmgr.blocks import BlockHasher


def test_block_digests_do_not_depend_on_how_the_bytes_are_cut():
    data = random.Random(3).randbytes(5 * 1000 + 17)
    expected = b"".join(
        hashlib.sha256(data[i : i + 1000]).digest() for i in range(0, len(data), 1000)
    )
    for piece in (1, 7, 999, 1000, 1001, 4096, len(data)):
        hasher = BlockHasher(1000)
        for i in range(0, len(data), piece):
            hasher.update(data[i : i + piece])
        assert hasher.digests() == expected, piece


def test_each_block_is_reported_as_it_closes():
    seen = []
    hasher = BlockHasher(4, on_block=lambda index, digest: seen.append((index, digest)))
    hasher.update(b"abcdef")
    assert seen == [(0, hashlib.sha256(b"abcd").digest())]  # "ef" is not a block yet
    hasher.digests()
    assert seen[1] == (1, hashlib.sha256(b"ef").digest())
