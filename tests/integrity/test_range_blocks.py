"""Ranges of a blob on the local store, over the real web process.

The first Range hashes the whole blob (nothing else can check a part of it) and records
the sha256 of every block; later ranges read only the blocks that cover them and check
each, so damage is found in the blocks a range reads.
"""

from __future__ import annotations

import hashlib

import pytest

from modelmgr.models import BlobBlocks
from modelmgr.storage import content_store
from tests.conftest import make_token
from tests.integrity.rawhttp import fetch
from tests.registry.factories import make_model, make_version

BLOCK = 64 * 1024
PATH = "/api/v1/models/ranged/versions/1/files/weights.bin"


@pytest.fixture
def small_blocks(settings, monkeypatch):
    """64 KiB blocks and one block per stream chunk, here and in the web process."""
    settings.MODELMGR_RANGE_BLOCK_BYTES = BLOCK
    monkeypatch.setenv("MODELMGR_RANGE_BLOCK_BYTES", str(BLOCK))
    monkeypatch.setenv("MODELMGR_STREAM_CHUNK_BYTES", str(BLOCK))


def get(web, token, header: str | None = None):
    headers = {"Range": header} if header else {}
    return fetch(web.port, PATH, token, timeout=30, headers=headers)


def test_the_first_range_records_block_digests_and_later_ranges_check_only_their_blocks(
    transactional_db, owner, small_blocks, web
):
    data = bytes(range(256)) * (4 * BLOCK // 256) + b"tail" * 100
    version = make_version(make_model(owner, "ranged"), "1", files={"weights.bin": data})
    sha = version.files.get().sha256
    token = make_token(owner, scopes=("read",))
    assert not BlobBlocks.objects.exists()

    first = get(web, token, f"bytes={2 * BLOCK}-{2 * BLOCK + 9}")
    assert first.status == 206 and first.complete
    assert first.body == data[2 * BLOCK : 2 * BLOCK + 10]
    row = BlobBlocks.objects.get(sha256=sha)  # recorded by the web process
    assert row.block_bytes == BLOCK
    assert bytes(row.digests) == b"".join(
        hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)
    )

    blob = content_store().local_path(sha)
    broken = bytearray(blob.read_bytes())
    broken[10] ^= 0xFF  # block 0
    blob.write_bytes(bytes(broken))
    # A range in intact blocks is served and right; one reaching block 0 is refused.
    intact = get(web, token, f"bytes={BLOCK}-{len(data) - 1}")
    assert intact.status == 206 and intact.complete and intact.body == data[BLOCK:]
    refused = get(web, token, "bytes=0-99")
    assert refused.status == 409
    assert "no longer matches its sha256" in refused.json()["detail"]
    # A whole download still hashes everything: never complete.
    whole = get(web, token)
    assert not whole.timed_out
    assert whole.status == 409 or not whole.complete
