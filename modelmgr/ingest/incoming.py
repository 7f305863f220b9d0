"""The unit every ingest path produces: a clean path inside the version + its staged bytes."""

from __future__ import annotations

from dataclasses import dataclass

from modelmgr.storage import StagedBlob


@dataclass
class IncomingFile:
    path: str  # clean relative path inside the version (see ingest.paths)
    staged: StagedBlob


def discard_incoming(files: list[IncomingFile]) -> None:
    """Remove the staged bytes of files that were not (or no longer need to be) committed."""
    for incoming in files:
        incoming.staged.discard()
