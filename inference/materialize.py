"""Lay a version's files out as a folder the runtimes can open, and check they are intact.

``MODELMGR_WORKER_CACHE_DIR/<content_hash>/<path>``: hardlinked from the local artifact
store when it is on the same filesystem, else stream-copied (from S3: the object's body
streamed into the cache file, hashed in the same pass). The folder appears with one
rename, so a reader never sees a half-built one and later loads reuse it. Every file's
sha256 is checked while the folder is built and again each time it is reused (a switch,
a rollback, a restore), because a hardlinked file *is* the stored blob: a blob corrupted
after its first use would otherwise be served on the next switch to it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path, PurePosixPath

from django.conf import settings

from inference.versions import FileSpec, VersionSpec
from modelmgr.exceptions import IntegrityFailure, ModelmgrError, NotFound
from modelmgr.storage import ContentStore, chunk_size, content_store

log = logging.getLogger("inference")

# Files this process hashed and found intact: (st_dev, st_ino) -> (size, mtime_ns,
# ctime_ns, sha256). A file whose size, mtime and ctime have not changed since is not
# hashed again, so switching back and forth between versions costs a stat per file, not a
# read of every byte. The trade-off: a change that leaves all three alone goes unseen until
# the worker restarts (the memo lives in memory), i.e. corruption below the filesystem (bit
# rot, a write to the raw device). Any write through the filesystem moves ctime, which no
# program can set back (utime sets it to now). A write within the same timestamp tick as
# the check could keep both times, so a file is remembered only when its times are at
# least RACY_S older than the start of its hash (git's "racy clean" rule); a file written
# just before is hashed again on its next use.
RACY_S = 2.0
MEMO_MAX = 4096
_memo: dict[tuple[int, int], tuple[int, int, int, str]] = {}
_memo_lock = threading.Lock()


def cache_root() -> Path:
    root = Path(settings.MODELMGR_WORKER_CACHE_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root


def version_materialize(
    *,
    spec: VersionSpec,
    store: ContentStore | None = None,
    root: Path | None = None,
    link: bool = True,
) -> Path:
    """Return the folder holding the version's files, each checked against its sha256.

    1. An existing ``<root>/<content_hash>`` is complete (it appeared by rename): first
       the store's own bytes are checked (``_store_check``): the store is the truth, and
       a blob replaced on disk is a new file that an older hardlink or copy in the cache
       does not share. Then each cached file (``artifact_check``: hashed unless
       unchanged since this process found it intact). All intact: reuse it. A file
       missing or changed: set the folder aside and build it again from the store, so a
       damaged copy heals and a damaged blob fails the build below, naming the file.
    2. Build a temporary sibling folder: per file, hardlink the blob (``link`` and same
       filesystem) or stream-copy it, hashing the bytes; a mismatch or a missing blob
       removes the folder and raises.
    3. Rename it into place; when another load won the race, keep theirs.
    """
    store = store or content_store()
    root = root or cache_root()
    target = root / spec.content_hash
    if target.is_dir():
        try:
            checked = _store_check(spec, store)
        except ModelmgrError:
            _discard(target, root, spec)  # a hardlinked copy shares the damaged file
            raise
        if _folder_intact(target, spec, checked):
            return target
        _discard(target, root, spec)
    building = _building(root, spec)
    building.mkdir(parents=True)
    try:
        for item in spec.files:
            _place(item, building / _safe(item.path, spec), store=store, link=link, spec=spec)
        try:
            os.rename(building, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


def artifact_check(path: Path, item: FileSpec, spec: VersionSpec) -> None:
    """Raise IntegrityFailure, naming the file, unless ``path`` holds ``item``'s bytes.

    Streams the file through sha256 in chunks (constant memory); skipped when the file's
    identity, size, mtime and ctime are those of an earlier check that found it intact.
    """
    before = os.stat(path)
    if _memo_get(before) == item.sha256:
        return
    started = time.time()
    with path.open("rb") as fh:
        digest = _hash_stream(fh, None)
        after = os.fstat(fh.fileno())
    _check(digest, item, spec)
    _memo_put(before, after, started=started, sha256=item.sha256)


def _store_check(spec: VersionSpec, store: ContentStore) -> set[tuple[int, ...]]:
    """Raise (naming the file) unless every blob in the store still holds its bytes.

    A local store's blob goes through ``artifact_check`` (a stat when this process has
    seen it intact and it has not changed since; a hardlinked cache file is the same
    file, so it costs nothing more). A remote store's (S3) blob must still be there with
    its size (one HEAD): the cached copy is a separate file, hashed when it was fetched
    and again by ``_folder_intact``, so re-downloading the object on every reuse would
    check nothing the cache does not already hold.

    Returns the identities of the local files found intact, so that the cached folder's
    check does not hash a hardlink to one of them a second time.
    """
    checked: set[tuple[int, ...]] = set()
    for item in spec.files:
        source = store.local_path(item.sha256)
        try:
            if source is not None:
                artifact_check(source, item, spec)
                checked.add(_identity(os.stat(source)))
            elif store.size_of(item.sha256) != item.size:
                raise IntegrityFailure(
                    f"artifact {item.path} of {spec.ref} has the wrong size in the artifact store"
                )
        except (FileNotFoundError, NotFound):
            raise NotFound(
                f"artifact {item.path} of {spec.ref} is missing from the artifact store"
            ) from None
    return checked


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _folder_intact(folder: Path, spec: VersionSpec, checked: set[tuple[int, ...]]) -> bool:
    try:
        for item in spec.files:
            path = folder / _safe(item.path, spec)
            if _identity(os.stat(path)) not in checked:
                artifact_check(path, item, spec)
    except (ModelmgrError, OSError) as exc:
        detail = exc.detail if isinstance(exc, ModelmgrError) else f"{type(exc).__name__}: {exc}"
        log.warning("the cached files of %s are damaged (%s); building again", spec.ref, detail)
        return False
    return True


def _building(root: Path, spec: VersionSpec) -> Path:
    # inference.cache prunes ".building-*" folders a crash left behind.
    return root / f".building-{spec.content_hash[:16]}-{uuid.uuid4().hex}"


def _discard(target: Path, root: Path, spec: VersionSpec) -> None:
    """Move a damaged folder out of the way in one rename (a reader sees it whole or not
    at all; open files stay readable), then delete it."""
    aside = _building(root, spec)
    try:
        os.rename(target, aside)
    except OSError:
        return  # another load set it aside already
    shutil.rmtree(aside, ignore_errors=True)


def _safe(path: str, spec: VersionSpec) -> Path:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("..", "") for p in parts):
        raise IntegrityFailure(f"artifact path {path!r} of {spec.ref} is not a clean relative path")
    return Path(*parts)


def _place(
    item: FileSpec, dest: Path, *, store: ContentStore, link: bool, spec: VersionSpec
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = store.local_path(item.sha256) if link else None
    if source is not None and source.is_file():
        try:
            os.link(source, dest)
        except OSError:  # another filesystem, or links not allowed: copy instead
            pass
        else:
            artifact_check(dest, item, spec)
            return
    try:
        reader = store.open(item.sha256)
    except NotFound:
        raise NotFound(
            f"artifact {item.path} of {spec.ref} is missing from the artifact store"
        ) from None
    with reader, dest.open("wb") as out:
        digest = _hash_stream(reader, out)
    _check(digest, item, spec)


def _hash_stream(reader, out) -> str:
    digest = hashlib.sha256()
    size = chunk_size()
    while chunk := reader.read(size):
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest()


def _check(actual: str, item: FileSpec, spec: VersionSpec) -> None:
    if actual != item.sha256:
        raise IntegrityFailure(f"artifact {item.path} of {spec.ref} is corrupt (sha256 mismatch)")


def _memo_get(stat: os.stat_result) -> str | None:
    with _memo_lock:
        known = _memo.get((stat.st_dev, stat.st_ino))
    if known is None or known[:3] != (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns):
        return None
    return known[3]


def _memo_put(
    before: os.stat_result, after: os.stat_result, *, started: float, sha256: str
) -> None:
    state = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    if state != (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns):
        return  # it changed while being read: the hash says nothing about it now
    if max(before.st_mtime_ns, before.st_ctime_ns) >= (started - RACY_S) * 1e9:
        return  # racily fresh: a write in the same timestamp tick would look the same
    with _memo_lock:
        _memo[(before.st_dev, before.st_ino)] = (*state[2:], sha256)
        while len(_memo) > MEMO_MAX:
            del _memo[next(iter(_memo))]
