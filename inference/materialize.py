"""Lay a version's files out as a folder the runtimes can open.

``MODELMGR_WORKER_CACHE_DIR/<content_hash>/<path>``: hardlinked from the local artifact
store when it is on the same filesystem, else stream-copied. Every file's sha256 is
checked once per content hash, while the folder is built; the folder appears with one
rename, so a reader never sees a half-built one and later loads reuse it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath

from django.conf import settings

from inference.versions import FileSpec, VersionSpec
from modelmgr.exceptions import IntegrityFailure, NotFound
from modelmgr.storage import ContentStore, chunk_size, content_store


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
    """Return the folder holding the version's files.

    1. An existing ``<root>/<content_hash>`` is complete (it appeared by rename): reuse it.
    2. Build a temporary sibling folder: per file, hardlink the blob (``link`` and same
       filesystem) or stream-copy it, hashing the bytes; a mismatch or a missing blob
       removes the folder and raises.
    3. Rename it into place; when another load won the race, keep theirs.
    """
    store = store or content_store()
    root = root or cache_root()
    target = root / spec.content_hash
    if target.is_dir():
        return target
    building = root / f".building-{spec.content_hash[:16]}-{uuid.uuid4().hex}"
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
            with dest.open("rb") as fh:
                _check(_hash_stream(fh, None), item, spec)
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
