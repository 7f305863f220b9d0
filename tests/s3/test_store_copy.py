"""Moving a registry's blobs from the local store to S3 and back (manage.py store_copy)
against a real SeaweedFS: every referenced blob arrives intact, a second run sends
nothing, a corrupt source blob is named and not copied, and after switching the store
the versions download from the copy byte for byte."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest
from django.core.management import CommandError, call_command

from modelmgr.s3_settings import s3_artifact_storage
from modelmgr.storage import content_store
from tests.inference.support import make_version, registered
from tests.s3.conftest import s3_client_env, shared_bucket

pytestmark = pytest.mark.django_db

BIG = bytes(range(256)) * 40_000  # about 10 MB: more than one 5 MB part


@pytest.fixture
def target(weed, monkeypatch, settings):
    bucket = shared_bucket(weed)
    for name, value in s3_client_env(weed).items():
        monkeypatch.setenv(name, value)
    settings.MODELMGR_S3_PART_BYTES = 5 * 1024 * 1024
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    return weed, bucket, prefix, f"s3://{bucket}/{prefix}"


def objects(weed, bucket: str, prefix: str) -> dict[str, bytes]:
    client = weed.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {
        item["Key"].rsplit("/", 1)[1]: client.get_object(Bucket=bucket, Key=item["Key"])[
            "Body"
        ].read()
        for item in listed
    }


def run(*args) -> str:
    out = io.StringIO()
    call_command("store_copy", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_every_blob_moves_to_s3_once_and_serves_from_there_after_the_switch(
    target, owner, isolated_storage, settings, api
):
    weed, bucket, prefix, url = target
    model = registered(owner, "clf")
    make_version(model, "1", files={"model.onnx": b"weights-1", "labels.txt": b"a\nb\n"})
    make_version(model, "2", files={"model.onnx": BIG, "labels.txt": b"a\nb\n"})  # one shared
    sha = {data: hashlib.sha256(data).hexdigest() for data in (b"weights-1", b"a\nb\n", BIG)}

    assert "would copy 3 blob(s)" in run(url, "--dry-run")
    assert objects(weed, bucket, prefix) == {}
    said = run(url)
    assert f"copied 3 blob(s) ({9 + 4 + len(BIG)} bytes) to {url}; 0 already there" in said
    assert objects(weed, bucket, prefix) == {digest: data for data, digest in sha.items()}
    assert "copied 0 blob(s) (0 bytes)" in run(url) and "3 already there" in run(url)

    # Switch the registry over: the versions download from S3 byte for byte.
    settings.STORAGES = {**settings.STORAGES, "artifacts": s3_artifact_storage(url)}
    assert content_store().remote
    response = api.get("/api/v1/models/clf/versions/2/files/model.onnx")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == BIG


def test_a_corrupt_source_blob_is_named_and_not_copied_and_the_rest_is(
    target, owner, isolated_storage
):
    weed, bucket, prefix, url = target
    model = registered(owner, "clf")
    make_version(model, "1", files={"model.onnx": b"good bytes"})
    bad = make_version(model, "2", files={"model.onnx": b"will rot"})
    content_store().local_path(bad.primary_file.sha256).write_bytes(b"has rotted")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 blob"):
        call_command("store_copy", url, stdout=out, stderr=out)
    said = out.getvalue()
    assert f"failed: blob {bad.primary_file.sha256} (clf@2:model.onnx)" in said
    assert "copied 1 blob(s)" in said and "1 failed" in said
    assert list(objects(weed, bucket, prefix)) == [hashlib.sha256(b"good bytes").hexdigest()]


def test_the_way_back_from_s3_to_a_local_folder(s3_store, owner, settings, api, tmp_path):
    model = registered(owner, "clf")
    make_version(model, "1", files={"model.onnx": b"weights-1", "labels.txt": b"a\nb\n"})
    make_version(model, "2", files={"model.onnx": BIG, "labels.txt": b"a\nb\n"})
    assert content_store().remote
    back = tmp_path / "back"
    assert "would copy 3 blob(s)" in run(str(back), "--dry-run")
    assert not back.exists()  # a dry run makes nothing
    said = run(str(back))
    assert f"copied 3 blob(s) ({9 + 4 + len(BIG)} bytes) to {back}; 0 already there" in said
    for data in (b"weights-1", b"a\nb\n", BIG):
        digest = hashlib.sha256(data).hexdigest()
        assert (back / "sha256" / digest[:2] / digest[2:4] / digest).read_bytes() == data
    assert list((back / ".staging").iterdir()) == []  # no staging file left behind
    assert "copied 0 blob(s) (0 bytes)" in run(str(back))

    # MODELMGR_STORAGE unset, MODELMGR_ARTIFACT_ROOT=back: served from the folder.
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(back)},
        },
    }
    assert not content_store().remote
    response = api.get("/api/v1/models/clf/versions/2/files/model.onnx")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == BIG


def test_bad_destinations_are_refused_with_a_reason(target, settings):
    with pytest.raises(CommandError, match="is not s3://bucket"):
        run("s3:/one-slash")
    settings.MODELMGR_STORAGE = target[3]
    with pytest.raises(CommandError, match="is the configured store already"):
        run(target[3])
