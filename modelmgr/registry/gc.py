"""Garbage collection of blobs that no ArtifactFile references any more.

- ``blobs_collect``: right after a delete commits (and after a failed ingest), the
  blobs its rows referenced.
- ``store_sweep``: now and then (the web process's runner, ``manage.py store_sweep``),
  whatever was left behind: staging files of crashed uploads, blobs put by an ingest
  that died before its COMMIT, blobs whose unlink failed.

Every "no row references it" check and the unlink that follows hold the store lock
(``modelmgr.storage.store_lock``), as ingest does from reusing a blob to committing the
row that references it: a blob is never unlinked under a version about to commit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from modelmgr.models import ArtifactFile, DownloadJob
from modelmgr.storage import ContentStore, content_store, staging_dir, store_lock

log = logging.getLogger(__name__)

# Blobs checked and unlinked per store-lock hold: keeps each hold short.
BATCH = 500


def blobs_collect(sha256s: Iterable[str]) -> list[str]:
    """Delete the given blobs that no row references now; return the ones deleted.

    Blobs are shared between versions (content addressing), so each one is checked
    against every ArtifactFile, not only the rows just deleted.
    """
    candidates = sorted(set(sha256s))
    store = content_store()
    deleted: list[str] = []
    for start in range(0, len(candidates), BATCH):
        deleted += _delete_unreferenced(store, candidates[start : start + BATCH])
    return deleted


def _delete_unreferenced(store: ContentStore, batch: list[str]) -> list[str]:
    deleted = []
    with transaction.atomic():
        store_lock()
        still_used = set(
            ArtifactFile.objects.filter(sha256__in=batch).values_list("sha256", flat=True)
        )
        for sha256 in batch:
            if sha256 in still_used:
                continue
            try:
                store.delete(sha256)
            except OSError:
                # An orphan blob only costs disk space; store_sweep removes it later.
                log.warning("could not delete unreferenced blob %s", sha256, exc_info=True)
                continue
            deleted.append(sha256)
    return deleted


def blobs_collect_on_commit(sha256s: Iterable[str]) -> None:
    """Collect after the deleting transaction commits: a rollback must keep the bytes.

    A failed collection is logged, not raised: the delete has committed, and the sweep
    removes what the collection left.
    """
    pending = list(sha256s)
    if pending:
        transaction.on_commit(lambda: blobs_collect(pending), robust=True)


@dataclass
class SweepResult:
    """What ``store_sweep`` removed (on a dry run: would remove)."""

    dry_run: bool
    staging: list[tuple[str, int]] = field(default_factory=list)  # (path, bytes)
    blobs: list[tuple[str, int]] = field(default_factory=list)  # (sha256, bytes)
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (key, upload id) aborted

    @property
    def staging_bytes(self) -> int:
        return sum(size for _, size in self.staging)

    @property
    def blob_bytes(self) -> int:
        return sum(size for _, size in self.blobs)


def store_sweep(*, older_than_s: float, dry_run: bool = False) -> SweepResult:
    """Remove leftovers older than ``older_than_s`` seconds; return what was removed.

    1. Staging files not modified for that long. A file being written is modified all
       the time, so in-progress uploads and downloads are never touched; the partial
       file of an import that a DownloadJob still points at is left to
       ``import_partials_sweep`` (a retry resumes it).
    2. Blobs older than that which no ArtifactFile references, checked and unlinked in
       batches under the store lock: an ingest reusing one of them either committed
       its row first (the blob is kept) or finds it gone and puts it again. The age
       spares blobs that something outside the lock may be about to use (a process
       running older code); blobs whose storage cannot tell their age are kept.
    3. On S3, multipart uploads started before then and never completed (a process
       died mid-upload): aborted, which frees their parts.

    ``dry_run`` reports the same without removing anything or taking the lock.
    """
    result = SweepResult(dry_run=dry_run)
    cutoff = time.time() - older_than_s
    store = content_store()
    _sweep_staging(result, cutoff, store)
    _sweep_blobs(result, cutoff, store)
    result.uploads = [
        (u.key, u.upload_id) for u in store.abort_stale_uploads(cutoff=cutoff, dry_run=dry_run)
    ]
    if result.staging or result.blobs or result.uploads:
        log.info(
            "store sweep%s: %d staging file(s) (%d bytes), %d unreferenced blob(s) (%d bytes), "
            "%d stale multipart upload(s)",
            " (dry run)" if dry_run else "",
            len(result.staging),
            result.staging_bytes,
            len(result.blobs),
            result.blob_bytes,
            len(result.uploads),
        )
    return result


def _sweep_staging(result: SweepResult, cutoff: float, store: ContentStore) -> None:
    root = staging_dir()
    blob_root = store.local_root()
    # Never walk into the store itself, should staging be configured above it.
    skip = blob_root.resolve() if blob_root is not None else None
    old: list[tuple[Path, int]] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if (Path(folder) / d).resolve() != skip)
        for name in sorted(names):
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            if stat.st_mtime < cutoff:
                old.append((path, stat.st_size))
    if not old:
        return
    resumable = {
        Path(p).resolve()
        for p in DownloadJob.objects.exclude(partial_path="").values_list("partial_path", flat=True)
    }
    for path, size in old:
        if path.resolve() in resumable:
            continue
        if not result.dry_run:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                log.warning("could not remove staging file %s", path, exc_info=True)
                continue
        result.staging.append((str(path), size))


def _sweep_blobs(result: SweepResult, cutoff: float, store: ContentStore) -> None:
    batch: dict[str, int] = {}
    for blob in store.iter_blobs():
        if blob.modified is None or blob.modified.timestamp() >= cutoff:
            continue
        batch[blob.sha256] = blob.size
        if len(batch) >= BATCH:
            _sweep_batch(result, store, batch)
            batch = {}
    if batch:
        _sweep_batch(result, store, batch)


def _sweep_batch(result: SweepResult, store: ContentStore, sizes: dict[str, int]) -> None:
    shas = sorted(sizes)
    if result.dry_run:
        used = set(ArtifactFile.objects.filter(sha256__in=shas).values_list("sha256", flat=True))
        removed = [sha for sha in shas if sha not in used]
    else:
        removed = _delete_unreferenced(store, shas)
    result.blobs += [(sha, sizes[sha]) for sha in removed]
