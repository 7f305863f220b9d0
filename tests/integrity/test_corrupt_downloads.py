"""Downloads of a version whose stored bytes were damaged, over the real web process.

A blob flipped on disk must never reach a client as a complete, successful download:
the zip ends (truncated) instead of hanging, and the one-file download stops before
the client has the whole wrong file (or is refused when verify has put the version
in error).
"""

from __future__ import annotations

import pytest

from modelmgr.storage import content_store
from tests.conftest import make_token
from tests.integrity.rawhttp import fetch
from tests.registry.factories import make_model, make_version

FILE_BYTES = 3 * 2**20  # several stream chunks: the damage is found mid-stream
PATH = "/api/v1/models/corrupt-detector/versions/1"


@pytest.fixture
def corrupt_version(transactional_db, owner):
    data = bytes(range(256)) * (FILE_BYTES // 256)
    model = make_model(owner, "corrupt-detector")
    version = make_version(model, "1", files={"aaa.txt": b"first file\n", "weights.bin": data})
    blob = content_store().local_path(version.files.get(path="weights.bin").sha256)
    damaged = bytearray(blob.read_bytes())
    damaged[-10] ^= 0xFF  # near the end: most of the file streams before the check fails
    blob.write_bytes(bytes(damaged))
    return version


def test_zip_of_a_corrupt_version_ends_truncated_instead_of_hanging(corrupt_version, web, owner):
    token = make_token(owner, scopes=("read",))
    result = fetch(web.port, PATH + "/download", token, timeout=30)
    assert not result.timed_out, "the client was still waiting for the end of the zip"
    # Either refused before the first byte, or the transfer is visibly incomplete.
    if result.status == 200:
        assert not result.complete, "a corrupt version's zip ended as if it were whole"
    else:
        assert result.status == 409


def test_one_file_download_of_a_corrupt_blob_is_never_complete(corrupt_version, web, owner):
    token = make_token(owner, scopes=("read",))
    result = fetch(web.port, PATH + "/files/weights.bin", token, timeout=30)
    assert not result.timed_out
    if result.status == 200:
        assert not result.complete, "the corrupt bytes were served as a whole 200"
    else:
        assert result.status == 409


def test_one_file_download_of_a_version_in_error_is_409(corrupt_version, web, owner):
    token = make_token(owner, scopes=("read", "write"))
    verify = fetch(web.port, PATH + "/verify", token, timeout=30, method="POST")
    assert verify.status == 200
    assert corrupt_version.__class__.objects.get(pk=corrupt_version.pk).status == "error"
    result = fetch(web.port, PATH + "/files/aaa.txt", token, timeout=30)
    assert result.status == 409
    assert "error" in result.json()["detail"]


def test_a_range_of_a_corrupt_blob_is_never_complete(corrupt_version, web, owner):
    token = make_token(owner, scopes=("read",))
    path = PATH + "/files/weights.bin"
    with_range = fetch(web.port, path, token, timeout=30, headers={"Range": "bytes=0-99"})
    # The damage is found before the first byte of the range is sent: a proper refusal.
    assert with_range.status == 409
    assert "no longer matches its sha256" in with_range.json()["detail"]
