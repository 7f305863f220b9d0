"""Pruning the worker cache (``MODELMGR_WORKER_CACHE_DIR``).

inference.materialize lays each version out as ``<root>/<content_hash>/``. When a
version is deleted from the registry its folder would stay forever, and where the
folder hardlinks the artifact store it would also keep the deleted blob's disk space.
The worker's reconcile thread calls ``cache_prune`` every
``MODELMGR_WORKER_CACHE_PRUNE_S``: it removes the folders that no version in the
database and no loaded model uses, and ``.building-*`` folders that a crashed load left
behind. Folders of versions that still exist are kept: the next load reuses them.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from inference.materialize import cache_root
from modelmgr.models import ModelVersion
from modelmgr.storage import version_content_hash

log = logging.getLogger("inference")

# A load materializes in seconds to minutes; an older half-built folder is debris.
STALE_BUILDING_S = 3600.0


@dataclass
class PruneReport:
    removed: list[str] = field(default_factory=list)
    bytes_removed: int = 0  # apparent size; hardlinked files free space only on their last link


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def cache_prune(
    *,
    in_use: set[str],
    root: Path | None = None,
    now: float | None = None,
    stale_building_s: float = STALE_BUILDING_S,
) -> PruneReport:
    """Remove cache folders whose content hash is neither in ``in_use`` (the loaded
    models) nor held by any version in the database."""
    root = root or cache_root()
    now = time.time() if now is None else now
    report = PruneReport()
    candidates = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    hashes = {p.name for p in candidates if not p.name.startswith(".")}
    registered = set(
        ModelVersion.objects.filter(content_hash__in=hashes - in_use).values_list(
            "content_hash", flat=True
        )
    )
    # Rows made without ingest may lack the field; the cache then named them from their files.
    for version in ModelVersion.objects.filter(content_hash="").prefetch_related("files"):
        registered.add(version_content_hash((f.path, f.sha256) for f in version.files.all()))
    for folder in candidates:
        if folder.name.startswith(".building-"):
            if now - folder.stat().st_mtime < stale_building_s:
                continue  # a load may be filling it right now
        elif folder.name.startswith(".") or folder.name in in_use or folder.name in registered:
            continue
        size = _size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            report.removed.append(folder.name)
            report.bytes_removed += size
    if report.removed:
        log.info(
            "worker cache: removed %d folder(s), %.1f MB: %s",
            len(report.removed),
            report.bytes_removed / 2**20,
            ", ".join(sorted(report.removed)[:5]) + (" ..." if len(report.removed) > 5 else ""),
        )
    return report
