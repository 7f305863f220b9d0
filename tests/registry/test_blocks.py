"""Block digests (modelmgr.blocks): computed the same however the bytes arrive, recorded
by verify, forgotten with their blob."""

from __future__ import annotations

import hashlib
import random

import pytest

from modelmgr.blocks import BlockHasher
from modelmgr.models import BlobBlocks
from modelmgr.storage import content_store
from tests.registry.factories import make_model, make_version


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


@pytest.mark.django_db
def test_verify_records_block_digests_and_collecting_the_blob_forgets_them(
    api, owner, settings, django_capture_on_commit_callbacks
):
    settings.MODELMGR_RANGE_BLOCK_BYTES = 64 * 1024
    data = random.Random(4).randbytes(3 * 64 * 1024 + 5)
    version = make_version(make_model(owner, "blocky"), "1", files={"w.bin": data})
    sha = version.files.get().sha256
    assert not BlobBlocks.objects.exists()
    assert api.post("/api/v1/models/blocky/versions/1/verify").json()["ok"] is True
    assert len(bytes(BlobBlocks.objects.get(sha256=sha).digests)) == 4 * 32
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete("/api/v1/models/blocky/versions/1").status_code in (200, 204)
    assert content_store().local_path(sha).exists() is False
    assert not BlobBlocks.objects.exists()
