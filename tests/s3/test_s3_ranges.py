"""Range downloads from S3 are checked block by block, without fetching the whole object.

The S3 store records the sha256 of every block when it uploads a blob (a ``BlobBlocks``
row); a Range reads only the blocks that cover it and checks each. Damage in the bucket
is found in the blocks a range reads and nowhere else; a blob without digests (stored
before they existed) is hashed whole by its first range (or verify), which records them.
"""

from __future__ import annotations

import hashlib

import pytest

from modelmgr.exceptions import IntegrityFailure
from modelmgr.ingest.services import version_verify
from modelmgr.models import BlobBlocks, ModelVersion
from tests.api.helpers import body_of, upload
from tests.conftest import make_token
from tests.integrity.rawhttp import fetch
from tests.s3.conftest import PART
from tests.s3.test_s3_store import write_safetensors

pytestmark = pytest.mark.django_db

BLOCK = 64 * 1024


@pytest.fixture
def small_blocks(settings, monkeypatch):
    """64 KiB blocks, here and in a web process started after this fixture."""
    settings.MODELMGR_RANGE_BLOCK_BYTES = BLOCK
    monkeypatch.setenv("MODELMGR_RANGE_BLOCK_BYTES", str(BLOCK))


def block_digests(data: bytes) -> bytes:
    return b"".join(
        hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)
    )


def uploaded(api, tmp_path, name: str, payload: int, *, seed: int = 0) -> bytes:
    path = write_safetensors(tmp_path / name / "w.safetensors", payload, seed=seed)
    response = upload(api, name, path, version="1")
    assert response.status_code == 201, response.content
    return path.read_bytes()


def damaged(data: bytes, *offsets: int) -> bytes:
    copy = bytearray(data)
    for offset in offsets:
        copy[offset] ^= 0xFF
    return bytes(copy)


def test_an_upload_records_the_sha256_of_every_block(api, s3_store, small_blocks, tmp_path):
    one_put = uploaded(api, tmp_path, "small", 3 * BLOCK + 100)
    multipart = uploaded(api, tmp_path, "big", 2 * PART + 12345, seed=1)
    for data in (one_put, multipart):
        row = BlobBlocks.objects.get(sha256=hashlib.sha256(data).hexdigest())
        assert row.block_bytes == BLOCK
        assert bytes(row.digests) == block_digests(data)
    assert (
        len(bytes(BlobBlocks.objects.get(sha256=hashlib.sha256(multipart).hexdigest()).digests))
        == 32 * 161
    )


def test_ranges_across_block_boundaries_are_exact(api, s3_store, small_blocks, tmp_path):
    data = uploaded(api, tmp_path, "det", 4 * BLOCK + 777)
    size = len(data)
    url = "/api/v1/models/det/versions/1/files/w.safetensors"
    for start, end in [
        (0, 0),
        (BLOCK - 1, BLOCK),  # one byte either side of a boundary
        (BLOCK, 2 * BLOCK - 1),  # exactly one block
        (100, 3 * BLOCK + 5),  # four blocks, starting and ending inside one
        (4 * BLOCK, size - 1),  # the short last block
        (size - 1, size - 1),
        (0, size - 1),
    ]:
        part = api.get(url, HTTP_RANGE=f"bytes={start}-{end}")
        assert part.status_code == 206, (start, end)
        assert body_of(part) == data[start : end + 1], (start, end)
        assert part["Content-Range"] == f"bytes {start}-{end}/{size}"
    tail = api.get(url, HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and body_of(tail) == data[-10:]


def test_damage_in_the_bucket_is_found_in_the_blocks_a_range_reads_and_only_there(
    api, s3_store, small_blocks, tmp_path
):
    data = uploaded(api, tmp_path, "det", 4 * BLOCK + 777)
    sha = hashlib.sha256(data).hexdigest()
    s3_store.put(sha, damaged(data, 10))  # rewritten behind modelmgr's back, in block 0
    url = "/api/v1/models/det/versions/1/files/w.safetensors"
    # Block 2 is intact and is all this range reads: served, and right.
    intact = api.get(url, HTTP_RANGE=f"bytes={2 * BLOCK + 5}-{2 * BLOCK + 99}")
    assert intact.status_code == 206
    assert body_of(intact) == data[2 * BLOCK + 5 : 2 * BLOCK + 100]
    # A range in block 0 (or reaching into it) is refused.
    for header in (f"bytes=0-{BLOCK - 1}", f"bytes=5-{3 * BLOCK}"):
        with pytest.raises(IntegrityFailure, match="no longer matches its sha256"):
            body_of(api.get(url, HTTP_RANGE=header))


@pytest.fixture
def block_sized_chunks(monkeypatch):
    """The web process streams one block per chunk, so a range of several blocks starts
    to flow before its last block is read."""
    monkeypatch.setenv("MODELMGR_STREAM_CHUNK_BYTES", str(BLOCK))


def test_over_the_real_web_process_a_damaged_range_is_refused_or_cut_short(
    api, s3_store, small_blocks, block_sized_chunks, tmp_path, web, owner
):
    data = uploaded(api, tmp_path, "det", 4 * BLOCK + 777)
    sha = hashlib.sha256(data).hexdigest()
    token = make_token(owner, scopes=("read",))
    path = "/api/v1/models/det/versions/1/files/w.safetensors"

    s3_store.put(sha, damaged(data, 3 * BLOCK + 1))  # block 3
    # The damage is in the range's only block: found before the first byte is sent.
    refused = fetch(
        web.port, path, token, timeout=30, headers={"Range": f"bytes={3 * BLOCK}-{3 * BLOCK + 9}"}
    )
    assert refused.status == 409
    assert "no longer matches its sha256" in refused.json()["detail"]
    # Blocks 1 and 2 stream before block 3 is read: the transfer stops short.
    cut = fetch(
        web.port, path, token, timeout=30, headers={"Range": f"bytes={BLOCK}-{4 * BLOCK - 1}"}
    )
    assert not cut.timed_out
    assert cut.status == 206 and not cut.complete
    # Blocks 0 to 2 are intact.
    fine = fetch(web.port, path, token, timeout=30, headers={"Range": f"bytes=0-{3 * BLOCK - 1}"})
    assert fine.status == 206 and fine.complete and fine.body == data[: 3 * BLOCK]

    s3_store.put(sha, data[:-10])  # truncated in the bucket
    short = fetch(web.port, path, token, timeout=30, headers={"Range": f"bytes={4 * BLOCK}-"})
    assert short.status == 409
    assert "shorter in the store than recorded" in short.json()["detail"]


def test_a_blob_without_block_digests_is_hashed_whole_by_its_first_range(
    api, owner, s3_store, small_blocks, tmp_path
):
    """As for a blob stored before block digests existed: the first range fetches and
    hashes the whole object, and records the digests only when it is intact."""
    data = uploaded(api, tmp_path, "det", 4 * BLOCK + 777)
    sha = hashlib.sha256(data).hexdigest()
    BlobBlocks.objects.all().delete()
    url = "/api/v1/models/det/versions/1/files/w.safetensors"
    in_block_2 = f"bytes={2 * BLOCK}-{2 * BLOCK + 9}"

    s3_store.put(sha, damaged(data, 10))  # block 0: outside the range, still found
    with pytest.raises(IntegrityFailure, match="no longer matches its sha256"):
        body_of(api.get(url, HTTP_RANGE=in_block_2))
    assert not BlobBlocks.objects.exists()  # damaged bytes get no digests

    s3_store.put(sha, data)
    part = api.get(url, HTTP_RANGE=in_block_2)
    assert part.status_code == 206 and body_of(part) == data[2 * BLOCK : 2 * BLOCK + 10]
    assert bytes(BlobBlocks.objects.get(sha256=sha).digests) == block_digests(data)


def test_verify_records_the_block_digests_of_an_intact_blob(
    api, owner, s3_store, small_blocks, tmp_path
):
    data = uploaded(api, tmp_path, "det", 3 * BLOCK + 1)
    sha = hashlib.sha256(data).hexdigest()
    BlobBlocks.objects.all().delete()
    version = ModelVersion.objects.get()
    s3_store.put(sha, damaged(data, 3 * BLOCK))
    assert version_verify(version=version, actor=owner)["ok"] is False
    assert not BlobBlocks.objects.exists()
    s3_store.put(sha, data)
    assert version_verify(version=version, actor=owner)["ok"] is True
    assert bytes(BlobBlocks.objects.get(sha256=sha).digests) == block_digests(data)


def test_collecting_a_blob_forgets_its_block_digests(
    api, s3_store, small_blocks, tmp_path, django_capture_on_commit_callbacks
):
    uploaded(api, tmp_path, "det", 3 * BLOCK)
    assert BlobBlocks.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete("/api/v1/models/det/versions/1").status_code in (200, 204)
    assert s3_store.keys() == []
    assert not BlobBlocks.objects.exists()
