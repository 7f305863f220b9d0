"""Import a model from an http(s) URL: create, cancel, retry and delete import jobs.

Every interface (API, /imports page, admin, commands) calls these; each change is one
transaction with its audit row. The download itself runs in the background runner
(modelmgr.imports.runner); these functions only change what the runner should do.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from modelmgr.audit import audit_record
from modelmgr.exceptions import VersionConflict
from modelmgr.imports import netguard
from modelmgr.imports.jobs import import_publish, import_snapshot, import_target
from modelmgr.imports.partial import partial_remove, partial_size
from modelmgr.imports.runner import import_stop_signal, imports_runner_wake
from modelmgr.metrics import import_record
from modelmgr.models import DownloadJob, DownloadState, RegisteredModel, version_validator
from modelmgr.registry.validation import InvalidInput, clean_model_name, clean_task

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def clean_sha256(value: str | None) -> str:
    """Lower-case hex sha256 ('' when not given); a ``sha256:`` prefix is accepted."""
    if not value:
        return ""
    text = value.strip().lower().removeprefix("sha256:")
    if not _SHA256_RE.match(text):
        raise InvalidInput(f"sha256 {value!r} is not 64 hexadecimal characters")
    return text


def _clean_version(version: str | None) -> str:
    if not version:
        return ""
    try:
        version_validator(version)
    except ValidationError:
        raise InvalidInput(
            f"version {version!r} is not valid: 1-64 characters, letters, digits, '.', '_', "
            "'+', '-'"
        ) from None
    return version


def _check_target_free(owner, model_name: str, version: str, task: str, url: str) -> None:
    """Refuse now what would only fail after the download: a taken version, a task that
    contradicts the model's, or the same import already under way."""
    model = RegisteredModel.objects.filter(owner=owner, name=model_name).first()
    if model is not None:
        if version and model.versions.filter(version=version).exists():
            raise VersionConflict(f"{model_name}@{version} already exists")
        if task and task != model.task:
            raise VersionConflict(
                f"model {model_name!r} is registered for task {model.task!r}, not {task!r}"
            )
    active = DownloadJob.objects.active().filter(owner=owner, model_name=model_name)
    clash = (active.filter(version=version).first() if version else None) or active.filter(
        url=url
    ).first()
    if clash is not None:
        raise VersionConflict(
            f"import {clash.pk} into {model_name!r} is already {clash.state}"
            + (
                f" for version {version}"
                if version and clash.version == version
                else " from the same URL"
            )
        )


def import_create(
    *,
    owner,
    url: str,
    model_name: str,
    version: str | None = None,
    task: str | None = None,
    expected_sha256: str | None = None,
    actor=None,
    actor_label: str | None = None,
) -> DownloadJob:
    """Queue an import of ``url`` as a new version of ``owner``'s model ``model_name``.

    1. Check the input: model name, task, version, sha256 (422), URL form (400).
    2. Guard the URL now (allow-list, resolved addresses; 422) so a refused host is
       answered at once; the runner checks again before every connection.
    3. Refuse a version that exists, a task that contradicts the model's, or the
       same import already queued or running (409).
    4. Create the job and its audit row; after commit, announce it and wake the runner.
    """
    actor = actor or owner
    model_name = clean_model_name(model_name)
    task = clean_task(task) if task else ""
    version = _clean_version(version)
    expected = clean_sha256(expected_sha256)
    parsed = netguard.parse_import_url(url)
    netguard.guard_url(parsed)
    url = str(parsed)
    with transaction.atomic():
        _check_target_free(owner, model_name, version, task, url)
        job = DownloadJob.objects.create(
            owner=owner,
            url=url,
            model_name=model_name,
            version=version,
            task=task,
            expected_sha256=expected,
        )
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="import.create",
            target_type="import",
            target=import_target(job),
            after=import_snapshot(job),
        )
        transaction.on_commit(lambda: _announce(job, wake=True))
    import_record("created")
    return job


def _announce(job: DownloadJob, *, wake: bool = False) -> None:
    import_publish(job)
    if wake:
        imports_runner_wake()


def _locked(job: DownloadJob) -> DownloadJob:
    return DownloadJob.objects.select_for_update().select_related("owner").get(pk=job.pk)


def import_cancel(*, job: DownloadJob, actor, actor_label: str | None = None) -> DownloadJob:
    """Stop a queued or running import. The partial file stays: a retry resumes it."""
    with transaction.atomic():
        job = _locked(job)
        if not job.is_active:
            raise VersionConflict(
                f"import {job.pk} is {job.state}; only a queued or running import can be cancelled"
            )
        before = import_snapshot(job)
        now = timezone.now()
        job.state = DownloadState.CANCELLED
        job.claimed_by = ""
        job.heartbeat_at = None
        job.next_attempt_at = None
        job.speed_bps = 0.0
        job.finished_at = now
        job.bytes_done = partial_size(job.partial_path)
        job.save()
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="import.cancel",
            target_type="import",
            target=import_target(job),
            before=before,
            after=import_snapshot(job),
        )
        job_id = job.pk
        transaction.on_commit(lambda: (import_stop_signal(job_id), _announce(job)))
    return job


def import_retry(*, job: DownloadJob, actor, actor_label: str | None = None) -> DownloadJob:
    """Queue a failed or cancelled import again; it resumes from its partial file when
    one is left and the server still has the same file (If-Range)."""
    with transaction.atomic():
        job = _locked(job)
        if job.state not in (DownloadState.FAILED, DownloadState.CANCELLED):
            raise VersionConflict(
                f"import {job.pk} is {job.state}; only a failed or cancelled import can be retried"
            )
        _check_target_free(job.owner, job.model_name, job.version, job.task, "")
        before = import_snapshot(job)
        job.state = DownloadState.QUEUED
        job.attempts = 0
        job.error = ""
        job.next_attempt_at = None
        job.finished_at = None
        job.speed_bps = 0.0
        job.bytes_done = partial_size(job.partial_path)
        if not job.bytes_done:
            job.partial_path = ""
        job.save()
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="import.retry",
            target_type="import",
            target=import_target(job),
            before=before,
            after=import_snapshot(job),
        )
        transaction.on_commit(lambda: _announce(job, wake=True))
    return job


def import_delete(*, job: DownloadJob, actor, actor_label: str | None = None) -> None:
    """Forget a finished, failed or cancelled import and remove its partial file.

    The version a finished import created stays: it is a version like any other.
    """
    with transaction.atomic():
        job = _locked(job)
        if job.is_active:
            raise VersionConflict(f"import {job.pk} is {job.state}; cancel it before deleting")
        before = import_snapshot(job)
        path = job.partial_path
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="import.delete",
            target_type="import",
            target=import_target(job),
            before=before,
        )
        job.delete()
        transaction.on_commit(lambda: partial_remove(path))
        job.pk = before["id"]
        transaction.on_commit(lambda: import_publish(job, deleted=True))
