"""Copy every blob the registry references from the configured artifact store into
another one: an S3-compatible store (the step before pointing MODELMGR_STORAGE at it), or
a local folder (the way back from S3, before pointing MODELMGR_ARTIFACT_ROOT at it).

Each blob is read from the source and hashed as it is staged; only bytes that hash to
their sha256 (and size) are committed: uploaded by the S3 store's own upload, which
checks the hash again as it sends (modelmgr.storage_s3), or renamed into the folder from
a staging file beside it (readers never see a partial blob). A blob the target has
already is skipped, so a copy that stopped half-way, or one run again after more
uploads, sends only what is missing. A source blob that does not read back as itself is
reported, naming the versions that use it, and not copied; the rest goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files.storage import FileSystemStorage, storages

from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ArtifactFile
from modelmgr.storage import ContentStore, content_store, stage_stream


@dataclass
class CopyReport:
    copied: list[tuple[str, int]] = field(default_factory=list)
    present: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sha256, why)

    @property
    def copied_bytes(self) -> int:
        return sum(size for _, size in self.copied)


def s3_store_for(url: str) -> ContentStore:
    """The S3 content store at ``url`` (``s3://bucket/prefix``), with the endpoint, keys
    and region from the same environment variables as MODELMGR_STORAGE."""
    from modelmgr.s3_settings import s3_artifact_storage
    from modelmgr.storage_s3 import S3ContentStore

    return S3ContentStore(storages.create_storage(s3_artifact_storage(url)))


def local_store_for(folder: Path) -> ContentStore:
    """The content store in ``folder`` (an absolute path; created if missing), laid out
    as MODELMGR_ARTIFACT_ROOT is."""
    return ContentStore(FileSystemStorage(location=str(folder)))


def staging_for(target: ContentStore) -> Path | None:
    """Where a blob for ``target`` is staged: beside a local store's blobs, so that its
    commit is one rename on one filesystem; None (the configured staging folder) for a
    remote store, which uploads from it."""
    root = target.local_root()
    if root is None:
        return None
    staging = root.parent / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def store_copy(
    target: ContentStore,
    *,
    source: ContentStore | None = None,
    dry_run: bool = False,
    progress: Callable[[str, str, int], None] | None = None,
) -> CopyReport:
    """Copy the referenced blobs of ``source`` (the configured store) into ``target``.
    ``progress(outcome, sha256, size)`` is called per blob: copied, present (skipped),
    missing (dry run: would be copied) or failed."""
    source = source or content_store()
    staging = None if dry_run else staging_for(target)  # a dry run makes nothing
    report = CopyReport()
    blobs = ArtifactFile.objects.values_list("sha256", "size").distinct().order_by("sha256")
    for sha256, size in blobs.iterator():
        if target.exists(sha256):
            report.present.append((sha256, size))
            _tell(progress, "present", sha256, size)
            continue
        if dry_run:
            report.copied.append((sha256, size))
            _tell(progress, "missing", sha256, size)
            continue
        why = _copy_one(source, target, sha256, size, staging)
        if why:
            report.failed.append((sha256, why))
            _tell(progress, "failed", sha256, size)
        else:
            report.copied.append((sha256, size))
            _tell(progress, "copied", sha256, size)
    return report


class _SourceUnreadable(Exception):
    pass


def _read(source: ContentStore, sha256: str) -> Iterator[bytes]:
    """The source's chunks; its errors told apart from the target's (a full disk)."""
    try:
        yield from source.iter_chunks(sha256)
    except (ModelmgrError, OSError) as exc:
        raise _SourceUnreadable(_text(exc)) from exc


def _copy_one(
    source: ContentStore, target: ContentStore, sha256: str, size: int, staging: Path | None
) -> str:
    """Stage, check, commit one blob; "" when it is in the target, else why not."""
    try:
        staged = stage_stream(_read(source, sha256), directory=staging)
    except _SourceUnreadable as exc:
        return f"{_used_by(sha256)}: cannot be read from the source store: {exc}"
    except OSError as exc:
        return f"{_used_by(sha256)}: cannot be staged for the target: {_text(exc)}"
    try:
        if staged.sha256 != sha256 or staged.size != size:
            return (
                f"{_used_by(sha256)}: the source's bytes hash to {staged.sha256} "
                f"({staged.size} bytes), not {sha256} ({size} bytes); not copied "
                "(the versions' Verify marks them in error)"
            )
        target.commit(staged)
        return ""
    except (ModelmgrError, OSError) as exc:
        return f"{_used_by(sha256)}: cannot be written to the target: {_text(exc)}"
    finally:
        staged.discard()


def _used_by(sha256: str) -> str:
    files = ArtifactFile.objects.filter(sha256=sha256).select_related("version__model")
    used = [f"{f.version.ref}:{f.path}" for f in files[:3]]
    return f"blob {sha256} ({', '.join(used)})"


def _text(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # not str(exc): that names the server's paths
    return getattr(exc, "detail", None) or str(exc)


def _tell(progress, outcome: str, sha256: str, size: int) -> None:
    if progress is not None:
        progress(outcome, sha256, size)
