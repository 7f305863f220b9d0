"""One attempt at one claimed import: fetch, verify, ingest, record the outcome."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from modelmgr.audit import audit_record
from modelmgr.exceptions import ModelmgrError
from modelmgr.imports.fetch import FetchError, Source, fetch_to_partial
from modelmgr.imports.jobs import (
    db_retry,
    import_publish,
    import_snapshot,
    import_target,
    job_fail,
    job_retry_later,
)
from modelmgr.imports.partial import PartialBusy, PartialFile, partial_path_for, partial_size
from modelmgr.imports.progress import ProgressTracker, Stopped, tracking
from modelmgr.metrics import import_record
from modelmgr.models import DownloadJob, DownloadState
from modelmgr.storage import StagedBlob

log = logging.getLogger(__name__)


def job_execute(job: DownloadJob, token: str, cancel: threading.Event) -> None:
    """Carry out one attempt of a job this token has claimed.

    1. Open the job's partial file (re-hashing what an earlier attempt left) and fetch
       the rest, flushing progress and stopping on cancel.
    2. Transient failure: back to the queue with backoff, partial kept. Permanent
       failure (refused, too large, 404, ...): failed, partial removed.
    3. Check the expected sha256; a mismatch fails the job and removes the bytes.
    4. Ingest (a .zip is unpacked) as a new version, then mark the job done with it;
       an ingest refusal fails the job with the reason, nothing kept.
    """
    tracker = ProgressTracker(job, token, cancel)
    path = job.partial_path or str(partial_path_for(job.pk))
    try:
        partial = PartialFile(path)
    except PartialBusy as exc:  # the previous attempt has not let go yet: try again soon
        job_retry_later(job, token, str(exc), bytes_on_disk=partial_size(path))
        return
    except OSError as exc:
        job_fail(job, token, f"cannot write the download to staging: {exc}", keep_partial=False)
        return
    try:
        # The sweep removes an unreferenced partial only long after its last write, so
        # creating the file before recording its path cannot lose a live download.
        tracker.save(partial_path=path, bytes_done=partial.size)
        source = Source(
            etag=job.etag,
            last_modified=job.last_modified,
            filename=job.filename,
            total=job.bytes_total,
        )
        with tracking(tracker):
            fetch_to_partial(
                job.url,
                partial,
                source,
                limit=settings.MODELMGR_IMPORT_MAX_BYTES,
                on_response=tracker.on_response,
                on_progress=tracker.on_progress,
            )
    except Stopped:
        partial.close()
        return
    except FetchError as exc:
        partial.close()
        if exc.transient:
            job_retry_later(job, token, exc.message, bytes_on_disk=partial.size)
        else:
            partial.remove()
            job_fail(job, token, exc.message, keep_partial=False)
        return
    except Exception as exc:  # a bug or a disk error: keep the bytes, say what happened
        log.exception("import %s failed unexpectedly", job.pk)
        partial.close()
        job_fail(
            job,
            token,
            f"internal error: {type(exc).__name__}: {exc}",
            keep_partial=True,
            bytes_on_disk=partial_size(path),
        )
        return
    blob = partial.to_staged()
    if job.expected_sha256 and blob.sha256 != job.expected_sha256:
        blob.discard()
        job_fail(
            job,
            token,
            f"the download's sha256 is {blob.sha256}, not the expected "
            f"{job.expected_sha256}; nothing was stored",
            keep_partial=False,
        )
        return
    _ingest(job, token, blob, source)


def _incoming(blob: StagedBlob, filename: str) -> list:
    from modelmgr.ingest.incoming import IncomingFile
    from modelmgr.ingest.paths import clean_relative_path
    from modelmgr.ingest.zipsafe import extract_zip_to_staging

    if filename.lower().endswith(".zip"):
        try:
            return extract_zip_to_staging(blob)
        finally:
            blob.discard()
    return [IncomingFile(path=clean_relative_path(filename), staged=blob)]


def _still_ours(job: DownloadJob, token: str) -> bool:
    return DownloadJob.objects.filter(
        pk=job.pk, state=DownloadState.RUNNING, claimed_by=token
    ).exists()


def _ingest(job: DownloadJob, token: str, blob: StagedBlob, source: Source) -> None:
    """Store the download as a version, then mark the job done.

    No transaction spans the version's creation: inspecting a big model takes time,
    and on SQLite an open write transaction would stall every other writer meanwhile.
    A cancel that lands while the version is being stored is too late: the version
    exists, so the job ends done (the truth) rather than cancelled.
    """
    from modelmgr.ingest.incoming import discard_incoming
    from modelmgr.registry.uploads import version_upload

    files: list = []
    label = f"{job.owner.get_username()} (import {job.pk})"
    try:
        files = _incoming(blob, source.filename or job.filename or "download")
        if not _still_ours(job, token):
            raise Stopped
        version = version_upload(
            actor=job.owner,
            name=job.model_name,
            files=files,
            task=job.task or None,
            version=job.version or None,
            source_uri=job.url,
            actor_label=label,
        )
        now = timezone.now()
        fields = dict(
            state=DownloadState.DONE,
            result_version=version,
            sha256=blob.sha256,
            bytes_done=blob.size,
            bytes_total=blob.size,
            speed_bps=0.0,
            error="",
            partial_path="",
            claimed_by="",
            heartbeat_at=None,
            next_attempt_at=None,
            finished_at=now,
            updated_at=now,
        )

        def mark_done() -> None:
            with transaction.atomic():
                DownloadJob.objects.filter(pk=job.pk).update(**fields)
                for name, value in fields.items():
                    setattr(job, name, value)
                audit_record(
                    actor=job.owner,
                    actor_label=label,
                    action="import.done",
                    target_type="import",
                    target=import_target(job),
                    after={**import_snapshot(job), "version": version.ref, "sha256": blob.sha256},
                )

        db_retry(mark_done)
        import_record("done")
    except Stopped:
        blob.discard()
        discard_incoming(files)
        return
    except ModelmgrError as exc:
        blob.discard()
        discard_incoming(files)
        job_fail(job, token, f"the downloaded file was refused: {exc.detail}", keep_partial=False)
        return
    except Exception as exc:  # a bug or a database error: fail loudly, keep nothing
        log.exception("import %s failed while storing the version", job.pk)
        blob.discard()
        discard_incoming(files)
        job_fail(
            job,
            token,
            f"internal error while storing the version: {type(exc).__name__}: {exc}",
            keep_partial=False,
        )
        return
    import_publish(job)
