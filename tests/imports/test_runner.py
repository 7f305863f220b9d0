"""Claiming, leases, restarts, cancel mid-download and the background runner."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from modelmgr.imports import runner as runner_module
from modelmgr.imports.fetch import Source
from modelmgr.imports.jobs import job_claim, job_save_running
from modelmgr.imports.partial import partial_size
from modelmgr.imports.progress import ProgressTracker, progress_flush_stale, tracking
from modelmgr.imports.runner import import_job_run, import_partials_sweep
from modelmgr.imports.services import import_cancel, import_retry
from modelmgr.models import DownloadJob, DownloadState, ModelVersion

PATH = "/models/tiny.onnx"
WAIT_S = 30


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for(condition, what: str) -> None:
    """Wait for another thread's work; a generous deadline only turns a hang into a failure.

    The in-memory SQLite test database answers "table is locked" while another thread
    writes: that reads as "not yet".
    """
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if condition():
                return
        except OperationalError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.django_db
def test_job_left_running_by_a_dead_process_is_taken_over_and_resumed(
    server, onnx_data, create_job, settings
):
    server.add(PATH, onnx_data, drop_after=1500)
    job = create_job(server.url(PATH))
    import_job_run(job.pk, worker="web-1")
    # web-1 died mid-download: the row still says running, its last flush lagging
    # behind the bytes on disk, and the heartbeat is older than the lease.
    stale = timezone.now() - timedelta(seconds=settings.MODELMGR_IMPORT_LEASE_SECONDS + 1)
    DownloadJob.objects.filter(pk=job.pk).update(
        state=DownloadState.RUNNING, claimed_by="web-1", heartbeat_at=stale, bytes_done=700
    )

    done = import_job_run(job.pk, worker="web-2")

    assert done.state == DownloadState.DONE, done.error
    assert server.requests_for(PATH)[1].header("Range") == "bytes=1500-"
    assert done.result_version.files.get().sha256 == sha(onnx_data)
    assert done.claimed_by == ""


@pytest.mark.django_db
def test_running_job_with_a_live_lease_is_not_taken(server, onnx_data, create_job):
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH))
    DownloadJob.objects.filter(pk=job.pk).update(
        state=DownloadState.RUNNING, claimed_by="web-1", heartbeat_at=timezone.now()
    )

    assert import_job_run(job.pk, worker="web-2") is None
    assert server.requests == []
    assert DownloadJob.objects.get(pk=job.pk).claimed_by == "web-1"


@pytest.mark.django_db
def test_a_job_is_claimed_once(server, create_job):
    job = create_job(server.url(PATH))

    first = job_claim(worker="web-1", job_id=job.pk)
    second = job_claim(worker="web-2", job_id=job.pk)

    assert first is not None and first.claimed_by.startswith("web-1/") and first.attempts == 1
    assert second is None
    assert job_claim(worker="web-2") is None


@pytest.mark.django_db
def test_an_old_claim_cannot_write_once_the_job_is_claimed_again(server, create_job, owner):
    job = create_job(server.url(PATH))
    first = job_claim(worker="web-1", job_id=job.pk)
    import_cancel(job=first, actor=owner)
    import_retry(job=first, actor=owner)
    second = job_claim(worker="web-1", job_id=job.pk)  # same process, new claim

    assert not job_save_running(first, first.claimed_by, bytes_done=5)
    assert job_save_running(second, second.claimed_by, bytes_done=7)
    assert DownloadJob.objects.get(pk=job.pk).bytes_done == 7


@pytest.mark.django_db
def test_stalled_download_gets_its_unsaved_count_flushed(server, create_job, settings):
    settings.MODELMGR_IMPORT_PROGRESS_INTERVAL = 3600.0
    job = create_job(server.url(PATH))
    claimed = job_claim(worker="web-1", job_id=job.pk)
    tracker = ProgressTracker(claimed, claimed.claimed_by, threading.Event())
    with tracking(tracker):
        tracker.on_response(Source(total=4000), resumed=False)
        tracker.on_progress(1500)  # a burst, then the stream stalls
        assert DownloadJob.objects.get(pk=job.pk).bytes_done == 0
        tracker.interval = 0.0  # the throttle interval has passed
        progress_flush_stale()

    assert DownloadJob.objects.get(pk=job.pk).bytes_done == 1500


@pytest.mark.django_db
def test_job_waiting_out_its_backoff_is_not_claimed_early(server, create_job):
    job = create_job(server.url(PATH))
    DownloadJob.objects.filter(pk=job.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )

    assert job_claim(worker="web-1") is None


@pytest.mark.django_db
def test_oldest_due_job_is_claimed_first(server, create_job):
    older = create_job(server.url("/a.onnx"), model_name="first")
    create_job(server.url("/b.onnx"), model_name="second")

    assert job_claim(worker="web-1").pk == older.pk


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_running_download_and_retry_resumes_it(server, onnx_data, create_job, owner):
    served = server.add(PATH, onnx_data, hold_after=1000)
    job = create_job(server.url(PATH))
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["job"] = import_job_run(job.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    assert server.held.wait(WAIT_S)
    # Cancel while the runner waits for more bytes (it has flushed all it received).
    wait_for(
        lambda: DownloadJob.objects.get(pk=job.pk).bytes_done == 1000,
        "the runner to record the first 1000 bytes",
    )
    import_cancel(job=job, actor=owner)
    server.release.set()
    worker.join(WAIT_S)

    cancelled = DownloadJob.objects.get(pk=job.pk)
    assert cancelled.state == DownloadState.CANCELLED
    kept = partial_size(cancelled.partial_path)
    assert 1000 <= kept <= 1000 + 256  # stopped within a chunk of the cancel
    assert ModelVersion.objects.count() == 0

    served.hold_after = None
    import_retry(job=cancelled, actor=owner)
    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert server.requests_for(PATH)[1].header("Range") == f"bytes={kept}-"
    assert done.result_version.files.get().sha256 == sha(onnx_data)


@pytest.mark.django_db(transaction=True)
def test_background_runner_downloads_a_new_import(server, onnx_data, create_job, settings):
    settings.MODELMGR_IMPORT_RUNNER = True
    settings.MODELMGR_IMPORT_POLL_SECONDS = 0.2
    server.add(PATH, onnx_data)
    try:
        job = create_job(server.url(PATH))  # wakes (and starts) the runner after commit
        wait_for(
            lambda: DownloadJob.objects.get(pk=job.pk).state == DownloadState.DONE,
            "the runner to finish the import",
        )
    finally:
        runner_module.imports_runner_stop()
    assert ModelVersion.objects.get().ref == "imported@1"


@pytest.mark.django_db(transaction=True)
def test_stopping_the_runner_hands_its_downloads_back_to_the_queue(
    server, onnx_data, create_job, settings
):
    settings.MODELMGR_IMPORT_RUNNER = True
    settings.MODELMGR_IMPORT_POLL_SECONDS = 0.2
    server.add(PATH, onnx_data, hold_after=1000)
    job = create_job(server.url(PATH))
    runner = runner_module.imports_runner_ensure_started()
    assert server.held.wait(WAIT_S)
    stopper = threading.Thread(target=runner_module.imports_runner_stop)
    stopper.start()
    wait_for(lambda: not runner.is_alive(), "the runner to begin stopping")
    server.release.set()
    stopper.join(WAIT_S)

    handed_back = DownloadJob.objects.get(pk=job.pk)
    assert handed_back.state == DownloadState.QUEUED
    assert handed_back.claimed_by == ""
    assert partial_size(handed_back.partial_path) < len(onnx_data)


@pytest.mark.django_db
def test_sweep_removes_old_partials_nobody_will_resume(
    server, onnx_data, create_job, settings, isolated_storage
):
    server.add(PATH, onnx_data, drop_after=1000)
    settings.MODELMGR_IMPORT_MAX_ATTEMPTS = 1
    job = create_job(server.url(PATH))
    failed = import_job_run(job.pk)
    assert failed.state == DownloadState.FAILED and partial_size(failed.partial_path) == 1000
    orphan = isolated_storage / ".staging" / "import-999999.part"
    orphan.write_bytes(b"left by a deleted job")
    old = time.time() - 2 * 3600
    os.utime(orphan, (old, old))
    settings.MODELMGR_IMPORT_PARTIAL_KEEP_HOURS = 1
    DownloadJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(hours=2))

    assert import_partials_sweep() == 2

    swept = DownloadJob.objects.get(pk=job.pk)
    assert (swept.partial_path, swept.bytes_done) == ("", 0)
    assert not Path(failed.partial_path).exists() and not orphan.exists()
