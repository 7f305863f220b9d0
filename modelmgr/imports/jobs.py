"""State changes of a running import, made by the runner that holds the job's lease.

Every write is conditional on ``state=running AND claimed_by=<this claim's token>``:
a job that was cancelled, or taken over after its lease expired, is never overwritten
by a runner that no longer owns it (zero rows updated means "stop").
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from modelmgr.audit import audit_record
from modelmgr.events import events_publish
from modelmgr.imports.selectors import import_payload, redacted_url
from modelmgr.metrics import import_record
from modelmgr.models import AuditEvent, DownloadJob, DownloadState

log = logging.getLogger(__name__)

EVENT_TYPE = "import.progress"
MAX_BACKOFF_SECONDS = 300.0
LOCKED_RETRY_SECONDS = 10.0
T = TypeVar("T")


def db_retry(write: Callable[[], T]) -> T:
    """Run a short write, retrying while SQLite reports the database or table locked.

    Several runner threads write small rows concurrently; SQLite's busy timeout covers
    most contention, but a shared-cache database answers "table is locked" at once.
    Never retries inside an outer transaction (its state would be undefined).
    """
    delay, deadline = 0.01, time.monotonic() + LOCKED_RETRY_SECONDS
    while True:
        try:
            return write()
        except OperationalError as exc:
            if (
                "locked" not in str(exc)
                or transaction.get_connection().in_atomic_block
                or time.monotonic() > deadline
            ):
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def import_publish(job: DownloadJob, *, deleted: bool = False) -> None:
    """Send ``{"type": "import.progress", "job": {...}}`` to the events group."""
    try:
        payload = import_payload(job, redact=True, deleted=deleted)
    except Exception:  # noqa: BLE001 - a progress nudge must never fail the import
        log.warning("could not build the event for import %s", job.pk, exc_info=True)
        return
    events_publish(EVENT_TYPE, {"job": payload})


def import_target(job: DownloadJob) -> str:
    return f"{job.owner.get_username()}/import/{job.pk}"


def import_snapshot(job: DownloadJob) -> dict:
    return {
        "id": job.pk,
        "state": job.state,
        "url": redacted_url(job.url),
        "model": job.model_name,
        "version": job.version or None,
        "bytes_done": job.bytes_done,
        "error": job.error,
    }


def claimable(now) -> Q:
    """Queued and due, or running with a lease older than MODELMGR_IMPORT_LEASE_SECONDS."""
    lease_cutoff = now - timedelta(seconds=settings.MODELMGR_IMPORT_LEASE_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    expired = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=lease_cutoff)
    return (Q(state=DownloadState.QUEUED) & due) | (Q(state=DownloadState.RUNNING) & expired)


def job_claim(*, worker: str, job_id: int | None = None) -> DownloadJob | None:
    """Take one claimable job (``job_id``, or the oldest) for ``worker``; None if none.

    The claim is one conditional UPDATE: of two processes racing for a job, exactly one
    updates a row; the other sees zero rows and tries the next candidate. Each claim
    writes its own token (``<worker>/<random>``) to ``claimed_by``: every later write
    is conditional on it, so even a stale thread of the same process that once ran the
    job (cancelled, then retried) can no longer touch it.
    """
    now = timezone.now()
    token = f"{worker}/{uuid.uuid4().hex[:12]}"
    candidates = DownloadJob.objects.filter(claimable(now))
    if job_id is not None:
        candidates = candidates.filter(pk=job_id)
    pks = db_retry(lambda: list(candidates.order_by("id").values_list("pk", flat=True)[:20]))
    for pk in pks:
        won = db_retry(
            lambda pk=pk: DownloadJob.objects.filter(claimable(now), pk=pk).update(
                state=DownloadState.RUNNING,
                claimed_by=token,
                heartbeat_at=now,
                attempts=F("attempts") + 1,
                next_attempt_at=None,
                error="",
                speed_bps=0.0,
                updated_at=now,
            )
        )
        if won:
            db_retry(
                lambda pk=pk: DownloadJob.objects.filter(pk=pk, started_at__isnull=True).update(
                    started_at=now
                )
            )
            return db_retry(lambda pk=pk: DownloadJob.objects.select_related("owner").get(pk=pk))
    return None


def _mine(job: DownloadJob, token: str):
    return DownloadJob.objects.filter(pk=job.pk, state=DownloadState.RUNNING, claimed_by=token)


def job_save_running(job: DownloadJob, token: str, **fields) -> bool:
    """Write ``fields`` (and the heartbeat) while the job is still ours; False when not."""
    now = timezone.now()
    fields.update(heartbeat_at=now, updated_at=now)
    updated = db_retry(lambda: _mine(job, token).update(**fields))
    if updated:
        for name, value in fields.items():
            setattr(job, name, value)
    return bool(updated)


def claimed_by_worker(worker: str):
    return DownloadJob.objects.filter(
        state=DownloadState.RUNNING, claimed_by__startswith=f"{worker}/"
    )


def job_heartbeat_all(*, worker: str) -> int:
    """Keep the leases of this process's running jobs fresh (even while a read stalls)."""
    now = timezone.now()
    return db_retry(lambda: claimed_by_worker(worker).update(heartbeat_at=now))


def job_retry_later(job: DownloadJob, token: str, message: str, *, bytes_on_disk: int) -> bool:
    """A transient failure: back to the queue with exponential backoff, or failed when the
    attempts are used up. The partial file stays either way, for the next attempt."""
    max_attempts = settings.MODELMGR_IMPORT_MAX_ATTEMPTS
    if job.attempts >= max_attempts:
        return job_fail(
            job,
            token,
            f"{message} (gave up after {job.attempts} attempts; retry resumes from "
            f"byte {bytes_on_disk})",
            keep_partial=True,
            bytes_on_disk=bytes_on_disk,
        )
    delay = min(
        settings.MODELMGR_IMPORT_RETRY_BACKOFF_SECONDS * 2 ** (job.attempts - 1),
        MAX_BACKOFF_SECONDS,
    )
    now = timezone.now()
    fields = dict(
        state=DownloadState.QUEUED,
        claimed_by="",
        heartbeat_at=None,
        speed_bps=0.0,
        next_attempt_at=now + timedelta(seconds=delay),
        bytes_done=bytes_on_disk,
        error=f"{message}; retrying in {delay:.0f}s (attempt {job.attempts} of {max_attempts})",
        updated_at=now,
    )
    if not db_retry(lambda: _mine(job, token).update(**fields)):
        return False
    for name, value in fields.items():
        setattr(job, name, value)
    import_publish(job)
    return True


def job_fail(
    job: DownloadJob, token: str, message: str, *, keep_partial: bool, bytes_on_disk: int = 0
) -> bool:
    """Mark the job failed with ``message`` (audited). Without ``keep_partial`` the
    caller has removed the partial file: nothing of the download is left."""
    now = timezone.now()
    fields = dict(
        state=DownloadState.FAILED,
        error=message,
        claimed_by="",
        heartbeat_at=None,
        speed_bps=0.0,
        finished_at=now,
        updated_at=now,
        next_attempt_at=None,
    )
    if not keep_partial:
        fields.update(partial_path="", bytes_done=0)
    else:
        fields.update(bytes_done=bytes_on_disk)

    def write() -> bool:
        with transaction.atomic():
            if not _mine(job, token).update(**fields):
                return False
            for name, value in fields.items():
                setattr(job, name, value)
            audit_record(
                actor=job.owner,
                actor_label=f"{job.owner.get_username()} (import {job.pk})",
                action="import.fail",
                target_type="import",
                target=import_target(job),
                after=import_snapshot(job),
                outcome=AuditEvent.Outcome.ERROR,
                error=message,
            )
            return True

    if not db_retry(write):
        return False
    import_record("failed")
    import_publish(job)
    return True
