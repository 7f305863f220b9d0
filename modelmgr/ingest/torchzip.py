"""Read PyTorch's zip containers (torch.save, TorchScript, torch.export .pt2) by name.

Every torch archive keeps its records under one top folder named after the file it was
saved as (``model/data.pkl``, ``model/code/...``); records are addressed relative to
that folder here. Nothing is executed or unpickled in this module.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from modelmgr.exceptions import IngestRejected

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a file entry first, or an empty archive
MAX_RECORD_BYTES = 256 * 1024 * 1024
# One record per storage: real checkpoints have thousands, never this many. Parsing a
# central directory costs memory per entry, so a larger one is refused unread.
MAX_ARCHIVE_ENTRIES = 200_000


@dataclass
class TorchArchive:
    zf: zipfile.ZipFile
    prefix: str  # "" or "folder/"
    names: set[str]  # record names relative to prefix

    def has(self, record: str) -> bool:
        return record in self.names

    def has_folder(self, folder: str) -> bool:
        return any(name.startswith(folder.rstrip("/") + "/") for name in self.names)

    def size(self, record: str) -> int:
        return self.zf.getinfo(self.prefix + record).file_size

    def read(self, record: str, *, limit: int = MAX_RECORD_BYTES) -> bytes:
        info = self.zf.getinfo(self.prefix + record)
        if info.file_size > limit:
            raise IngestRejected(f"record {record!r} is larger than {limit} bytes")
        return self.zf.read(info)

    def open(self, record: str):
        return self.zf.open(self.prefix + record)

    def kind(self) -> str | None:
        """'pt2', 'torchscript', 'pickle' (torch.save) or None (not a torch archive)."""
        if self.has("archive_format"):
            if self.read("archive_format", limit=64).strip() == b"pt2":
                return "pt2"
        if any(name.startswith("models/") and name.endswith(".json") for name in self.names):
            return "pt2"
        if self.has("data.pkl") and self.has("constants.pkl") and self.has_folder("code"):
            return "torchscript"
        if self.has("data.pkl"):
            return "pickle"
        return None


def open_archive(local: Path, *, label: str) -> TorchArchive:
    """Open ``local`` as a zip and find the shared top folder; BadZipFile on failure."""
    with local.open("rb") as fh:
        end = zipfile._EndRecData(fh)  # private, stable: see zipsafe._refuse_huge_directory
    if end is not None and end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ARCHIVE_ENTRIES:
        raise IngestRejected(f"{label} holds more than {MAX_ARCHIVE_ENTRIES} zip records")
    zf = zipfile.ZipFile(local)
    names = [info.filename for info in zf.infolist() if not info.is_dir()]
    heads = {name.split("/", 1)[0] for name in names}
    if len(heads) == 1 and all("/" in name for name in names):
        prefix = heads.pop() + "/"
    else:
        prefix = ""
    return TorchArchive(zf=zf, prefix=prefix, names={name[len(prefix) :] for name in names})
