"""Content-addressed artifact store on Django's storage API.

Bytes are addressed by their sha256: ``sha256/ab/cd/abcdef...``. Identical files are
stored once. Writes stream in chunks into a local *staging* file with the hash computed
in the same pass; a staged blob becomes visible only when ``commit`` moves it into the
store (one rename on the local filesystem), so a failed ingest leaves nothing behind.

Blobs are shared, so deciding that one may go and deciding to reuse one race: both take
``store_lock`` (below). ``modelmgr.registry.gc`` collects and sweeps unreferenced blobs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from modelmgr.exceptions import IntegrityFailure, NotFound, UploadTooLarge
from modelmgr.locks import transaction_lock
from modelmgr.staging_pipeline import HashingPipeline


def version_content_hash(files: Iterable[tuple[str, str]]) -> str:
    """A version's identity: sha256 over its sorted ``path\0sha256`` lines. The worker
    cache names a version's folder by it (inference.materialize)."""
    lines = sorted(f"{path}\0{sha256}\n" for path, sha256 in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def chunk_size() -> int:
    return settings.MODELMGR_STREAM_CHUNK_BYTES


def staging_dir() -> Path:
    path = Path(settings.STAGING_ROOT)
    path.mkdir(parents=True, exist_ok=True)
    return path


class StagingWriter:
    """Streams bytes to a staging file, hashing and counting in the same pass.

    ``limit`` caps the size: exceeding it removes the file and raises UploadTooLarge.

    ``pipelined`` hashes and writes in two helper threads while the caller receives or
    parses the next piece (modelmgr.staging_pipeline), writing through O_DIRECT where the
    filesystem takes it and ``MODELMGR_STAGING_DIRECT_IO`` is on: for uploads, whose
    caller has work of its own. Inline, the caller hashes and writes: for imports, zip
    entries and fetches, whose caller only waits on the source.
    """

    def __init__(
        self,
        *,
        limit: int | None = None,
        suffix: str = ".part",
        pipelined: bool = False,
        directory: Path | None = None,
    ):
        self.limit = limit
        self.size = 0
        # ``directory``: a staging folder on the target store's filesystem, where
        # commit's rename must land (staging_dir() is the configured store's).
        fd, name = tempfile.mkstemp(dir=directory or staging_dir(), prefix="stage-", suffix=suffix)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)
        # Inline, the caller's thread hashes; pipelined, the pipeline's thread does.
        self._hash = None if pipelined else hashlib.sha256()
        self._pipeline = (
            HashingPipeline(fd, direct=settings.MODELMGR_STAGING_DIRECT_IO) if pipelined else None
        )

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.abort()
            raise UploadTooLarge(f"the file is larger than the {self.limit} byte limit")
        if self._pipeline is None:
            self._hash.update(data)
            self._file.write(data)
            return
        try:
            self._pipeline.write(data)
        except BaseException:
            self.abort()
            raise

    def finish(self) -> StagedBlob:
        if self._pipeline is None:
            sha256 = self._hash.hexdigest()
        else:
            try:
                sha256 = self._pipeline.finish()
            except BaseException:
                self.abort()
                raise
        self._file.close()
        return StagedBlob(path=self.path, sha256=sha256, size=self.size)

    def abort(self) -> None:
        """Remove the file. A write error of a helper thread is dropped: the caller is
        already failing (or raised that error from ``write``)."""
        if self._pipeline is not None:
            self._pipeline.close()
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


@dataclass
class StagedBlob:
    """A fully written, hashed file in staging, not yet visible in the store."""

    path: Path
    sha256: str
    size: int

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def stage_stream(
    chunks: Iterable[bytes], *, limit: int | None = None, directory: Path | None = None
) -> StagedBlob:
    writer = StagingWriter(limit=limit, directory=directory)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def stage_file(fileobj: BinaryIO, *, limit: int | None = None) -> StagedBlob:
    size = chunk_size()
    return stage_stream(iter(lambda: fileobj.read(size), b""), limit=limit)


class ContentStore:
    """The artifact store: ``commit`` staged blobs, ``open``/``verify``/``delete`` by sha256."""

    remote = False  # True for a store whose blobs are not files on this machine

    def __init__(self, storage: Storage | None = None):
        self.storage = storage or storages["artifacts"]

    def put_before_commit(self, staged: StagedBlob) -> bool:
        """Ingest calls this before its transaction; a remote store uploads a new blob
        here, outside the store lock. A local one does nothing: ``commit`` renames."""
        return False

    def size_of(self, sha256: str) -> int:
        try:
            return self.storage.size(self.key(sha256))
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is missing from the artifact store") from None

    def abort_stale_uploads(self, *, cutoff: float, dry_run: bool = False) -> list:
        """Abort uploads left incomplete by a crash (remote stores); none here."""
        return []

    @staticmethod
    def key(sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        return self.storage.exists(self.key(sha256))

    def commit(self, staged: StagedBlob) -> bool:
        """Move a staged blob into the store. Returns True when it was new.

        On a local filesystem this is one rename (atomic: readers never see a partial
        file); on other storages it streams the staged file through ``Storage.save``.
        """
        key = self.key(staged.sha256)
        if self.storage.exists(key):
            staged.discard()
            return False
        if isinstance(self.storage, FileSystemStorage):
            target = Path(self.storage.path(key))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged.path, target)
            return True
        with staged.path.open("rb") as fh:
            self.storage.save(key, File(fh))
        staged.discard()
        return True

    def open(self, sha256: str) -> BinaryIO:
        key = self.key(sha256)
        if not self.storage.exists(key):
            raise NotFound(f"blob {sha256} is missing from the artifact store")
        return self.storage.open(key, "rb")

    def local_root(self) -> Path | None:
        """The folder that holds every blob when the storage is local, else None."""
        try:
            return Path(self.storage.path("sha256"))
        except NotImplementedError:
            return None

    def local_path(self, sha256: str) -> Path | None:
        """Filesystem path of a blob when the storage is local, else None."""
        try:
            return Path(self.storage.path(self.key(sha256)))
        except NotImplementedError:
            return None

    def iter_chunks(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes [start, end] (inclusive end, as HTTP Range) in chunks."""
        size = chunk_size()
        with self.open(sha256) as fh:
            fh.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                data = fh.read(size if remaining is None else min(size, remaining))
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data

    def hash_of(self, sha256: str) -> tuple[str, int]:
        """Re-read a blob and return its actual (sha256, size). A blob with no block
        digests yet gets them in the same pass, recorded when it is intact
        (modelmgr.blocks)."""
        from modelmgr import blocks  # the models: not importable before Django is set up

        digest = hashlib.sha256()
        block_digests = (
            None
            if blocks.recorded(sha256)
            else blocks.BlockHasher(settings.MODELMGR_RANGE_BLOCK_BYTES)
        )
        total = 0
        for chunk in self.iter_chunks(sha256):
            digest.update(chunk)
            if block_digests is not None:
                block_digests.update(chunk)
            total += len(chunk)
        actual = digest.hexdigest()
        if actual == sha256 and block_digests is not None:
            blocks.record(sha256, block_digests.block_bytes, block_digests.digests())
        return actual, total

    def verify(self, sha256: str, size: int | None = None) -> None:
        actual, actual_size = self.hash_of(sha256)
        if actual != sha256 or (size is not None and actual_size != size):
            raise IntegrityFailure(
                f"blob {sha256} is corrupt: its bytes hash to {actual} ({actual_size} bytes)"
            )

    def delete(self, sha256: str) -> None:
        from modelmgr import blocks  # the models: not importable before Django is set up

        self.storage.delete(self.key(sha256))
        blocks.forget(sha256)

    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Every blob in the store with its size and modification time (None when the
        storage cannot tell); names that are not blobs are skipped."""
        hexdigits = set("0123456789abcdef")
        for first in _listdir(self.storage, "sha256")[0]:
            for second in _listdir(self.storage, f"sha256/{first}")[0]:
                for name in _listdir(self.storage, f"sha256/{first}/{second}")[1]:
                    if (
                        len(name) != 64
                        or not set(name) <= hexdigits
                        or name[:2] != first
                        or name[2:4] != second
                    ):
                        continue
                    key = self.key(name)
                    try:
                        size = self.storage.size(key)
                        modified = _modified_time(self.storage, key)
                    except FileNotFoundError:
                        continue  # deleted meanwhile
                    yield StoredBlob(sha256=name, size=size, modified=modified)


@dataclass
class StoredBlob:
    sha256: str
    size: int
    modified: datetime | None


def _listdir(storage: Storage, path: str) -> tuple[list[str], list[str]]:
    """(folders, files) in ``path``, sorted; both empty when it does not exist."""
    try:
        dirs, files = storage.listdir(path)
    except FileNotFoundError:
        return [], []
    return sorted(dirs), sorted(files)


def _modified_time(storage: Storage, key: str) -> datetime | None:
    try:
        return storage.get_modified_time(key)
    except NotImplementedError:
        return None


def store_lock() -> None:
    """Hold the artifact store's lock until the current transaction ends (inside atomic()).

    Why: blobs are shared by content, and two decisions about one blob race. A collector
    (a delete's ``blobs_collect``, a failed ingest's cleanup, the sweep) decides "no row
    references this sha256, unlink it"; an ingest of identical bytes decides "the blob is
    there already, drop my staged copy" and only later commits the row that references
    it. If the collector looks between the ingest's decision and its COMMIT, it sees no
    row and unlinks a blob that a committed version then points at.

    So both hold this lock: the collector around its check and unlink, the ingest from
    its decision (put or reuse) until its rows are committed. The lock must end exactly
    at the COMMIT, even when ingest runs inside a caller's transaction (a new model's
    first upload), and must never outlive a rollback or a dead process: hence a
    transaction-scoped lock (``modelmgr.locks.transaction_lock``: a PostgreSQL
    transaction advisory lock, or SQLite's write lock), which the database releases at
    COMMIT or ROLLBACK and which every thread and process sharing the database obeys.
    Ingest takes it after inspection and after writing its rows, so it is held for the
    renames into the store and the COMMIT only (on a remote storage, for the uploads of
    new blobs too).
    """
    from modelmgr.models import ArtifactFile

    transaction_lock(
        "store",
        timeout=settings.MODELMGR_STORE_LOCK_TIMEOUT_S,
        sqlite_table=ArtifactFile._meta.db_table,
    )


def content_store() -> ContentStore:
    """The configured artifact store: local files, or S3 (``MODELMGR_STORAGE=s3://...``)."""
    from modelmgr.s3_settings import is_s3

    if is_s3(settings.STORAGES["artifacts"]):
        from modelmgr.storage_s3 import S3ContentStore

        return S3ContentStore(storages["artifacts"])
    return ContentStore()


def new_staging_name(suffix: str = "") -> Path:
    return staging_dir() / f"stage-{uuid.uuid4().hex}{suffix}"
