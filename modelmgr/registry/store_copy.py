"""Copy every blob the registry references from the configured artifact store into an
S3-compatible one: the step before pointing MODELMGR_STORAGE at it.

Each blob is read from the source and hashed as it is staged; only bytes that hash to
their sha256 (and size) are uploaded, by the S3 store's own upload, which checks the
hash again as it sends (modelmgr.storage_s3). A blob the target has already is skipped,
so a copy that stopped half-way, or one run again after more uploads, sends only what
is missing. A source blob that does not read back as itself is reported, naming the
versions that use it, and not copied; the rest goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.files.storage import storages

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
        why = _copy_one(source, target, sha256, size)
        if why:
            report.failed.append((sha256, why))
            _tell(progress, "failed", sha256, size)
        else:
            report.copied.append((sha256, size))
            _tell(progress, "copied", sha256, size)
    return report


def _copy_one(source: ContentStore, target: ContentStore, sha256: str, size: int) -> str:
    """Stage, check, upload one blob; "" when it is in the target, else why not."""
    try:
        staged = stage_stream(source.iter_chunks(sha256))
    except (ModelmgrError, OSError) as exc:
        return f"{_used_by(sha256)}: cannot be read from the source store: {_text(exc)}"
    try:
        if staged.sha256 != sha256 or staged.size != size:
            return (
                f"{_used_by(sha256)}: the source's bytes hash to {staged.sha256} "
                f"({staged.size} bytes), not {sha256} ({size} bytes); not copied "
                "(the versions' Verify marks them in error)"
            )
        target.commit(staged)
        return ""
    except ModelmgrError as exc:
        return f"{_used_by(sha256)}: {_text(exc)}"
    finally:
        staged.discard()


def _used_by(sha256: str) -> str:
    files = ArtifactFile.objects.filter(sha256=sha256).select_related("version__model")
    used = [f"{f.version.ref}:{f.path}" for f in files[:3]]
    return f"blob {sha256} ({', '.join(used)})"


def _text(exc: Exception) -> str:
    return getattr(exc, "detail", None) or str(exc)


def _tell(progress, outcome: str, sha256: str, size: int) -> None:
    if progress is not None:
        progress(outcome, sha256, size)
