"""Reads of import jobs, visibility applied, and the one JSON picture of a job.

``import_payload`` is what the API returns and what ``import.progress`` events carry,
so the /imports page renders both with the same code.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.db.models import QuerySet

from modelmgr.exceptions import NotFound
from modelmgr.imports.partial import partial_size
from modelmgr.models import DownloadJob, DownloadState
from modelmgr.registry.pagination import Page, keyset_page
from modelmgr.registry.validation import InvalidInput


def import_queryset(*, user) -> QuerySet:
    return DownloadJob.objects.visible_to(user).select_related("owner", "result_version__model")


def import_list(
    *, user, state: str | None = None, cursor: str | None = None, limit: int = 50
) -> Page[DownloadJob]:
    """Visible import jobs, newest first; ``state`` filters (comma-separated states)."""
    jobs = import_queryset(user=user)
    if state:
        states = [s.strip() for s in state.split(",") if s.strip()]
        unknown = sorted(set(states) - set(DownloadState.values))
        if unknown:
            raise InvalidInput(
                f"state {', '.join(unknown)} is not one of: {', '.join(DownloadState.values)}"
            )
        jobs = jobs.filter(state__in=states)
    return keyset_page(jobs, cursor=cursor, limit=limit)


def import_get(*, user, job_id: int) -> DownloadJob:
    """The job, or 404 when it does not exist or belongs to someone else."""
    job = import_queryset(user=user).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"import {job_id} not found")
    return job


def redacted_url(url: str) -> str:
    """``url`` without its query string and fragment (pre-signed links carry secrets)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return ""
    return str(parsed.copy_with(query=None, fragment=None, userinfo=b""))


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def import_payload(
    job: DownloadJob, *, redact: bool = False, deleted: bool = False
) -> dict[str, Any]:
    """A JSON-safe picture of ``job`` for the API and the ``import.progress`` event.

    ``redact`` drops the URL's query string: events reach every connected browser.
    """
    total = job.bytes_total
    progress = min(job.bytes_done / total, 1.0) if total else None
    eta = None
    if job.state == DownloadState.RUNNING and total and job.speed_bps > 0:
        eta = max(total - job.bytes_done, 0) / job.speed_bps
    version = job.result_version
    on_disk = partial_size(job.partial_path) if job.partial_path else 0
    finished = job.state in (DownloadState.FAILED, DownloadState.CANCELLED)
    return {
        "id": job.pk,
        "owner": job.owner.get_username(),
        "model": job.model_name,
        "version": job.version or None,
        "task": job.task or None,
        "url": redacted_url(job.url) if redact else job.url,
        "host": _host(job.url),
        "filename": job.filename,
        "state": job.state,
        "bytes_done": job.bytes_done,
        "bytes_total": total,
        "progress": progress,
        "speed_bps": round(job.speed_bps, 1),
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "attempts": job.attempts,
        "error": job.error,
        "expected_sha256": job.expected_sha256 or None,
        "sha256": job.sha256 or None,
        "result": version.ref if version else None,
        "result_version_id": version.pk if version else None,
        "resumable_bytes": on_disk if finished else 0,
        "can_cancel": job.is_active and not deleted,
        "can_retry": finished and not deleted,
        "can_delete": not job.is_active and not deleted,
        "deleted": deleted,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host
    except (httpx.InvalidURL, ValueError, TypeError):
        return ""
