"""Helpers for ingest tests: stage bytes, build uploads, assert nothing was left behind."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.conf import settings

from modelmgr.ingest.incoming import IncomingFile
from modelmgr.models import ArtifactFile, ModelVersion
from modelmgr.storage import StagedBlob, stage_file


def stage_bytes(data: bytes) -> StagedBlob:
    return stage_file(io.BytesIO(data))


def incoming(path: str, data: bytes) -> IncomingFile:
    return IncomingFile(path=path, staged=stage_bytes(data))


def incoming_file(path: str, source: Path) -> IncomingFile:
    return incoming(path, source.read_bytes())


def staged_files() -> list[Path]:
    return sorted(p for p in Path(settings.STAGING_ROOT).rglob("*") if p.is_file())


def blob_files() -> list[Path]:
    root = Path(settings.ARTIFACT_ROOT) / "sha256"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_stored() -> None:
    """No version rows, no file rows, no blobs, and an empty staging folder."""
    assert ModelVersion.objects.count() == 0
    assert ArtifactFile.objects.count() == 0
    assert blob_files() == []
    assert staged_files() == []


def zip_bytes(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_folder(folder: Path, *, top: str | None = None) -> bytes:
    """Zip ``folder``'s files; ``top`` nests them under one folder like ``zip -r m.zip m/``."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            relative = path.relative_to(folder).as_posix()
            entries[f"{top}/{relative}" if top else relative] = path.read_bytes()
    return zip_bytes(entries)
