"""Where incoming files come from: an upload (maybe a zip) or a local file or folder.

Each source streams its bytes into staging and returns IncomingFile objects with clean
paths; nothing is visible in the store until ``version_create`` commits them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from modelmgr.exceptions import BadPath, IngestRejected
from modelmgr.ingest.incoming import IncomingFile, discard_incoming
from modelmgr.ingest.paths import clean_relative_path
from modelmgr.ingest.upload import StagedUploadedFile
from modelmgr.ingest.zipsafe import extract_zip_to_staging
from modelmgr.storage import StagedBlob, StagingWriter, chunk_size, stage_stream


def incoming_from_upload(
    uploaded: UploadedFile, *, path: str | None = None, archive: bool | None = None
) -> list[IncomingFile]:
    """Turn one uploaded file into incoming files.

    ``archive=None`` unpacks names ending in ``.zip``; True/False force it. For an
    archive, ``path`` is a folder the contents go under; otherwise it is the file's
    path in the version (default: the uploaded name).
    """
    name = getattr(uploaded, "original_name", None) or uploaded.name or ""
    return incoming_from_staged(_staged_of(uploaded), name=name, path=path, archive=archive)


def incoming_from_staged(
    staged: StagedBlob, *, name: str, path: str | None = None, archive: bool | None = None
) -> list[IncomingFile]:
    """Incoming files from one staged file sent as ``name`` (see incoming_from_upload);
    the staged file is used or removed in every case."""
    unpack = archive if archive is not None else name.lower().endswith(".zip")
    try:
        # The name as sent is vetted even where `path` replaces it or it names an archive.
        clean_name = clean_relative_path(name)
        if not unpack:
            target = clean_relative_path(path) if path else clean_name
            return [IncomingFile(path=target, staged=staged)]
        folder = clean_relative_path(path) if path else ""
    except BadPath:
        staged.discard()
        raise
    try:
        files = extract_zip_to_staging(staged)
    finally:
        staged.discard()  # the archive itself is never stored
    for incoming in files:
        incoming.path = f"{folder}/{incoming.path}" if folder else incoming.path
    return files


def _staged_of(uploaded: UploadedFile) -> StagedBlob:
    if isinstance(uploaded, StagedUploadedFile):
        return uploaded.staged
    # Files that did not come through StagingUploadHandler (tests, other handlers).
    return stage_stream(uploaded.chunks(), limit=settings.MODELMGR_MAX_UPLOAD_BYTES)


def incoming_from_local_path(
    path: Path, *, progress: Callable[[int], None] | None = None
) -> list[IncomingFile]:
    """Stage a local file, or every file under a local folder (symlinks inside refused)."""
    root = Path(path)
    if not root.exists():
        raise IngestRejected(f"{root} does not exist")
    if root.is_file():
        sources = [(clean_relative_path(root.name), root)]
    elif root.is_dir():
        sources = _walk_folder(root)
    else:
        raise IngestRejected(f"{root} is neither a file nor a folder")
    staged: list[IncomingFile] = []
    try:
        for relative, source in sources:
            staged.append(IncomingFile(path=relative, staged=_stage_local(source, progress)))
    except BaseException:
        discard_incoming(staged)
        raise
    return staged


def _walk_folder(root: Path) -> list[tuple[str, Path]]:
    sources: list[tuple[str, Path]] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            candidate = Path(folder) / name
            if candidate.is_symlink():
                raise IngestRejected(f"{candidate} is a symbolic link; links are refused")
        for name in sorted(filenames):
            candidate = Path(folder) / name
            if not candidate.is_file():
                raise IngestRejected(f"{candidate} is not a regular file")
            sources.append((clean_relative_path(candidate.relative_to(root).as_posix()), candidate))
    if not sources:
        raise IngestRejected(f"{root} contains no files")
    return sources


def _stage_local(source: Path, progress: Callable[[int], None] | None) -> StagedBlob:
    writer = StagingWriter(suffix=".import")
    try:
        with source.open("rb") as fh:
            while chunk := fh.read(chunk_size()):
                writer.write(chunk)
                if progress is not None:
                    progress(len(chunk))
    except BaseException:
        writer.abort()
        raise
    return writer.finish()
