"""The content store on an S3-compatible service (``MODELMGR_STORAGE=s3://bucket/prefix``).

Same contract as the local ``ContentStore``; the rest of the code does not know which
one it has (``modelmgr.storage.content_store``). Keys are ``<prefix>/sha256/ab/cd/<sha>``.

- Uploads are staged locally first, hashed in the same pass as they arrive (ingest
  inspects the staged file anyway), then sent once: one PUT up to the part size, else a
  multipart upload of ``MODELMGR_S3_PART_BYTES`` parts, one part in memory at a time. The
  bytes sent are hashed again as they are read for sending: a staged file that no longer
  matches its sha256 is never published under it. S3 makes an object visible only when
  its PUT or CompleteMultipartUpload succeeds; any error aborts the multipart upload, so a
  failed upload leaves no object and no parts. A crash in between leaves an incomplete
  multipart upload, which ``abort_stale_uploads`` (run by the store sweep) aborts.
- Dedup: a blob whose key exists is not uploaded again (one HEAD).
- Reads stream the object's body (``GetObject``, with ``Range`` for part of it); nothing
  buffers a whole object.
- Block digests: the upload also hashes every ``MODELMGR_RANGE_BLOCK_BYTES`` block and
  records the digests (``modelmgr.blocks``) once the object is complete, so a Range
  download is checked without fetching the whole object.
- Garbage collection lists the prefix (``ListObjectsV2``) and deletes by key.

The boto3 client is django-storages' ``S3Storage``'s (per thread), so the endpoint,
region, addressing style and credentials are configured in one place
(``modelmgr.s3_settings``).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import Storage

from modelmgr import blocks
from modelmgr.exceptions import IntegrityFailure, NotFound, StoreUnavailable
from modelmgr.storage import ContentStore, StagedBlob, StoredBlob, chunk_size

log = logging.getLogger(__name__)

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_PASSED_ON = _MISSING | {"InvalidRange"}


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


@contextmanager
def _unavailable_on_error(what: str):
    """An S3 failure becomes StoreUnavailable (503 with a detail), never a bare 500."""
    try:
        yield
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in _PASSED_ON:
            raise
        code = exc.response.get("Error", {}).get("Code", "?")
        raise StoreUnavailable(f"the artifact store (S3) failed to {what}: {code}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"the artifact store (S3) failed to {what}: {exc}") from exc


@dataclass
class PendingUpload:
    """An incomplete multipart upload found in the bucket."""

    key: str
    upload_id: str
    initiated: datetime


class S3Body(io.RawIOBase):
    """A GetObject body as a readable, closable file (``with store.open(sha) as fh``)."""

    def __init__(self, body) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._body.read(None if size is None or size < 0 else size)

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3ContentStore(ContentStore):
    remote = True

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self.bucket: str = storage.bucket_name
        self.prefix: str = (storage.location or "").strip("/")

    @property
    def client(self):
        return self.storage.connection.meta.client

    def object_key(self, sha256: str) -> str:
        key = self.key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob_prefix(self) -> str:
        return f"{self.prefix}/sha256/" if self.prefix else "sha256/"

    # --- reads ------------------------------------------------------------------------
    def exists(self, sha256: str) -> bool:
        try:
            with _unavailable_on_error("look up a blob"):
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(sha256))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def size_of(self, sha256: str) -> int:
        try:
            with _unavailable_on_error("look up a blob"):
                head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(sha256))
        except ClientError as exc:
            if _missing(exc):
                raise NotFound(f"blob {sha256} is missing from the artifact store") from None
            raise
        return int(head["ContentLength"])

    def _get(self, sha256: str, start: int = 0, end: int | None = None):
        args = {"Bucket": self.bucket, "Key": self.object_key(sha256)}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            with _unavailable_on_error("read a blob"):
                return self.client.get_object(**args)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return io.BytesIO(b"")  # past the object's end: the caller checks the length
            raise NotFound(f"blob {sha256} is missing from the artifact store") from exc

    def open(self, sha256: str) -> S3Body:
        return S3Body(self._get(sha256))

    def iter_chunks(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes [start, end] (inclusive end, as HTTP Range): one ranged GET,
        streamed in chunks."""
        body = self._get(sha256, start, end)
        size = chunk_size()
        try:
            while data := body.read(size):
                yield data
        finally:
            body.close()

    # --- writes -----------------------------------------------------------------------
    def put_before_commit(self, staged: StagedBlob) -> bool:
        """Upload a new blob before ingest's transaction, outside the store lock (an
        upload takes as long as the network needs; the lock blocks every writer).
        ``commit`` then finds it there. Returns True when this call uploaded it."""
        if self.exists(staged.sha256):
            return False
        self.upload(staged)
        return True

    def commit(self, staged: StagedBlob) -> bool:
        """Under the store lock: the blob is there (reused or put just before), or it is
        uploaded now (a collector removed it meanwhile). Returns True when uploaded."""
        try:
            if self.exists(staged.sha256):
                return False
            self.upload(staged)
            return True
        finally:
            staged.discard()

    def upload(self, staged: StagedBlob) -> None:
        with _unavailable_on_error("store a blob"):
            self._upload(staged)

    def _upload(self, staged: StagedBlob) -> None:
        """Send a staged file to its key, checking that what is sent hashes to its sha256.

        1. Up to one part: read it (one part in memory), hash it, PUT it.
        2. Larger: CreateMultipartUpload; per part, read, hash, UploadPart; when every
           byte is sent and the hash matches, CompleteMultipartUpload (the object
           appears only now). Any error or mismatch aborts the upload: no object, no parts.
        """
        # S3 allows 10,000 parts: a file too large for the configured size gets larger parts.
        part_size = max(settings.MODELMGR_S3_PART_BYTES, -(-staged.size // 10_000))
        key = self.object_key(staged.sha256)
        digest = hashlib.sha256()
        block_bytes = settings.MODELMGR_RANGE_BLOCK_BYTES
        block_digests = blocks.BlockHasher(block_bytes)
        with staged.path.open("rb") as fh:
            if staged.size <= part_size:
                data = _read_exactly(fh, staged.size + 1)
                digest.update(data)
                block_digests.update(data)
                self._check(staged, digest, len(data))
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
                blocks.record(staged.sha256, block_bytes, block_digests.digests())
                return
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            try:
                parts = []
                sent = 0
                while data := _read_exactly(fh, part_size):
                    digest.update(data)
                    block_digests.update(data)
                    sent += len(data)
                    number = len(parts) + 1
                    answer = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                    )
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                    del data
                self._check(staged, digest, sent)
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
            except BaseException:
                self._abort(key, upload_id)
                raise
        blocks.record(staged.sha256, block_bytes, block_digests.digests())

    @staticmethod
    def _check(staged: StagedBlob, digest, size: int) -> None:
        if digest.hexdigest() != staged.sha256 or size != staged.size:
            raise IntegrityFailure(
                f"staged file for blob {staged.sha256} changed before its upload "
                f"(its bytes hash to {digest.hexdigest()}, {size} bytes); nothing was stored"
            )

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception:  # noqa: BLE001
            # The sweep aborts it later (abort_stale_uploads); the upload's error matters more.
            log.warning("could not abort multipart upload %s of %s", upload_id, key, exc_info=True)

    def delete(self, sha256: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(sha256))
        except (BotoCoreError, ClientError) as exc:
            # Collectors treat an OSError as "leave it to the sweep".
            raise OSError(f"could not delete blob {sha256} from S3: {exc}") from exc
        blocks.forget(sha256)

    # --- listing, sweeping -----------------------------------------------------------
    def local_root(self):
        return None

    def local_path(self, sha256: str):
        return None

    def iter_blobs(self) -> Iterator[StoredBlob]:
        hexdigits = set("0123456789abcdef")
        prefix = self._blob_prefix()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                rest = item["Key"][len(prefix) :]
                first, _, tail = rest.partition("/")
                second, _, name = tail.partition("/")
                if (
                    len(name) != 64
                    or not set(name) <= hexdigits
                    or name[:2] != first
                    or name[2:4] != second
                ):
                    continue
                yield StoredBlob(sha256=name, size=item["Size"], modified=item["LastModified"])

    def pending_uploads(self) -> Iterator[PendingUpload]:
        """Incomplete multipart uploads under this store's prefix."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._blob_prefix()
        )
        for page in pages:
            for item in page.get("Uploads", []) or []:
                yield PendingUpload(
                    key=item["Key"], upload_id=item["UploadId"], initiated=item["Initiated"]
                )

    def abort_stale_uploads(self, *, cutoff: float, dry_run: bool = False) -> list[PendingUpload]:
        """Abort the multipart uploads started before ``cutoff`` (a POSIX time): left by a
        process that died mid-upload. Ongoing ones are younger than any sane cutoff."""
        stale = [u for u in self.pending_uploads() if u.initiated.timestamp() < cutoff]
        if not dry_run:
            for upload in stale:
                self._abort(upload.key, upload.upload_id)
        return stale


def _read_exactly(fh, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the file (a buffered reader loops)."""
    return fh.read(size)
