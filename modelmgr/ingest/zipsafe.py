"""Unpack an uploaded zip into staging without trusting a byte of it.

The central directory is vetted before anything is extracted (names, entry types,
count, declared sizes and ratios); then each entry streams into its own StagingWriter
while the *actual* decompressed bytes are counted, so a lying header cannot push past
the caps. Any failure removes every file staged from this zip.
"""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

from django.conf import settings

from modelmgr.exceptions import BadPath, IngestRejected, ModelmgrError
from modelmgr.ingest.incoming import IncomingFile, discard_incoming
from modelmgr.ingest.paths import clean_relative_path
from modelmgr.storage import StagedBlob, StagingWriter, chunk_size

# Ratios of tiny entries say nothing (a 1 KiB run of zeros compresses 100:1), so the
# ratio cap applies to an entry's compressed size rounded up to this floor.
RATIO_FLOOR_BYTES = 4096
# Archive tools' litter, never part of a model.
_IGNORED_PREFIXES = ("__MACOSX/",)
_IGNORED_NAMES = (".DS_Store",)
_CORRUPT_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
    struct.error,
)


@dataclass
class _Entry:
    info: zipfile.ZipInfo
    path: str


@dataclass
class _Limits:
    max_files: int
    max_total: int
    max_ratio: float

    @classmethod
    def from_settings(cls) -> _Limits:
        return cls(
            settings.MODELMGR_ZIP_MAX_FILES,
            settings.MODELMGR_ZIP_MAX_TOTAL_BYTES,
            float(settings.MODELMGR_ZIP_MAX_RATIO),
        )

    def ratio_cap(self, compressed: int) -> float:
        return self.max_ratio * max(compressed, RATIO_FLOOR_BYTES)


def extract_zip_to_staging(staged_zip: StagedBlob) -> list[IncomingFile]:
    """Vet and unpack ``staged_zip``; return one IncomingFile per regular file.

    1. Open the archive (not a zip / corrupt -> IngestRejected).
    2. Vet every entry from the central directory: clean path, regular file or
       directory only (no symlinks), not encrypted, no duplicate paths, at most
       MODELMGR_ZIP_MAX_FILES files, declared total and per-entry ratio within caps.
    3. Strip a folder shared by every file (``zip -r m.zip m/`` nests everything
       under ``m/``; the version should hold what was *in* the folder).
    4. Stream each entry into staging, counting actual bytes against the per-entry
       ratio cap, the total cap and the whole-archive ratio; abort on the first breach.
    5. On any failure remove every file staged so far and raise.
    """
    limits = _Limits.from_settings()
    _refuse_huge_directory(staged_zip, limits)
    try:
        archive = zipfile.ZipFile(staged_zip.path)
    except _CORRUPT_ERRORS as exc:
        raise IngestRejected(f"the upload is not a valid zip archive: {exc}") from None
    with archive:
        entries = _vet_entries(archive, limits)
        if not entries:
            raise IngestRejected("the zip archive contains no files")
        _strip_shared_folder(entries)
        return _extract(archive, entries, limits)


def _refuse_huge_directory(staged_zip: StagedBlob, limits: _Limits) -> None:
    """Count entries from the end record before ZipFile builds a ZipInfo for each one.

    A central directory of millions of entries costs gigabytes of memory to parse, so
    an archive declaring far more entries than the file cap (directories included) is
    refused unread. ``_EndRecData`` is private but has been stable since Python 2.
    """
    try:
        with staged_zip.path.open("rb") as fh:
            end = zipfile._EndRecData(fh)
    except OSError as exc:
        raise IngestRejected(f"the upload is not a valid zip archive: {exc}") from None
    if end is None:
        raise IngestRejected("the upload is not a valid zip archive: no end of central directory")
    if end[zipfile._ECD_ENTRIES_TOTAL] > 2 * limits.max_files + 16:
        raise IngestRejected(f"the zip archive holds more than {limits.max_files} files")


def _vet_entries(archive: zipfile.ZipFile, limits: _Limits) -> list[_Entry]:
    entries: list[_Entry] = []
    seen: set[str] = set()
    declared_total = 0
    for info in archive.infolist():
        # orig_filename keeps what zipfile would cut at a NUL byte.
        raw_name = info.orig_filename
        try:
            path = clean_relative_path(raw_name)
        except BadPath as exc:
            raise BadPath(f"zip entry {ascii(raw_name)} is refused: {exc.detail}") from None
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise IngestRejected(f"zip entry {path!r} is a symbolic link; links are refused")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise IngestRejected(f"zip entry {path!r} is not a regular file")
        if info.is_dir() or _ignored(path):
            continue
        if info.flag_bits & 0x1:
            raise IngestRejected(f"zip entry {path!r} is encrypted; encrypted zips are refused")
        if path in seen:
            raise IngestRejected(f"zip entry {path!r} appears more than once")
        seen.add(path)
        entries.append(_Entry(info, path))
        if len(entries) > limits.max_files:
            raise IngestRejected(f"the zip archive holds more than {limits.max_files} files")
        declared_total += info.file_size
        if declared_total > limits.max_total:
            raise IngestRejected(f"the zip archive unpacks to more than {limits.max_total} bytes")
        if info.file_size > limits.ratio_cap(info.compress_size):
            raise IngestRejected(
                f"zip entry {path!r} declares a compression ratio over "
                f"{limits.max_ratio:g}:1 (a zip bomb?)"
            )
    _refuse_file_folder_clashes(seen)
    return entries


def _ignored(path: str) -> bool:
    return path.startswith(_IGNORED_PREFIXES) or path.rsplit("/", 1)[-1] in _IGNORED_NAMES


def _refuse_file_folder_clashes(paths: set[str]) -> None:
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in paths:
                raise IngestRejected(f"zip entry {folder!r} is both a file and a folder")


def _strip_shared_folder(entries: list[_Entry]) -> None:
    heads = {entry.path.split("/", 1)[0] for entry in entries}
    if len(heads) == 1 and all("/" in entry.path for entry in entries):
        for entry in entries:
            entry.path = entry.path.split("/", 1)[1]


def _extract(
    archive: zipfile.ZipFile, entries: list[_Entry], limits: _Limits
) -> list[IncomingFile]:
    staged: list[IncomingFile] = []
    total_compressed = sum(entry.info.compress_size for entry in entries)
    archive_cap = min(limits.max_total, limits.ratio_cap(total_compressed))
    total = 0
    try:
        for entry in entries:
            entry_cap = limits.ratio_cap(entry.info.compress_size)
            writer = StagingWriter(suffix=".unzip")
            try:
                size = 0
                with archive.open(entry.info) as member:
                    while chunk := member.read(chunk_size()):
                        size += len(chunk)
                        total += len(chunk)
                        if size > entry_cap:
                            raise IngestRejected(
                                f"zip entry {entry.path!r} decompresses past a "
                                f"{limits.max_ratio:g}:1 ratio (a zip bomb?)"
                            )
                        if total > archive_cap:
                            raise IngestRejected(
                                "the zip archive decompresses past "
                                f"{_archive_cap_reason(limits, archive_cap)}"
                            )
                        writer.write(chunk)
            except BaseException:
                writer.abort()
                raise
            staged.append(IncomingFile(path=entry.path, staged=writer.finish()))
    except ModelmgrError:
        discard_incoming(staged)
        raise
    except _CORRUPT_ERRORS as exc:
        discard_incoming(staged)
        raise IngestRejected(f"the zip archive is corrupt: {exc}") from None
    except BaseException:
        discard_incoming(staged)
        raise
    return staged


def _archive_cap_reason(limits: _Limits, archive_cap: float) -> str:
    if archive_cap >= limits.max_total:
        return f"the {limits.max_total} byte limit"
    return f"a {limits.max_ratio:g}:1 overall compression ratio (a zip bomb?)"
