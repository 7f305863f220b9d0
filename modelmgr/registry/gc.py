"""Garbage collection of blobs that no ArtifactFile references any more."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

from modelmgr.models import ArtifactFile
from modelmgr.storage import content_store

log = logging.getLogger(__name__)


def blobs_collect(sha256s: Iterable[str]) -> list[str]:
    """Delete the given blobs that no row references now; return the ones deleted.

    Blobs are shared between versions (content addressing), so each one is checked
    against every ArtifactFile, not only the rows just deleted.
    """
    candidates = set(sha256s)
    still_used = set(
        ArtifactFile.objects.filter(sha256__in=candidates).values_list("sha256", flat=True)
    )
    store = content_store()
    deleted = []
    for sha256 in sorted(candidates - still_used):
        try:
            store.delete(sha256)
        except OSError:
            # An orphan blob only costs disk space; the next collection retries it.
            log.warning("could not delete unreferenced blob %s", sha256, exc_info=True)
            continue
        deleted.append(sha256)
    return deleted


def blobs_collect_on_commit(sha256s: Iterable[str]) -> None:
    """Collect after the deleting transaction commits: a rollback must keep the bytes."""
    pending = list(sha256s)
    if pending:
        transaction.on_commit(lambda: blobs_collect(pending))
