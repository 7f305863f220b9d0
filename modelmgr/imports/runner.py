"""Runs import jobs in the web process: a dispatcher thread and N download threads.

The database row is the truth. Any number of web processes may run a runner: a job is
taken with one conditional UPDATE (``jobs.job_claim``), so two processes never run the
same job, and a job whose process died (its lease expired) is taken over and resumed
from its partial file. Tests drive one job synchronously with ``import_job_run``.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

from modelmgr.imports.execute import job_execute
from modelmgr.imports.jobs import (
    claimed_by_worker,
    db_retry,
    import_publish,
    job_claim,
    job_heartbeat_all,
)
from modelmgr.imports.partial import PREFIX, partial_remove
from modelmgr.imports.progress import progress_flush_stale
from modelmgr.models import DownloadJob, DownloadState
from modelmgr.registry.gc import store_sweep
from modelmgr.storage import staging_dir

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
SWEEP_EVERY_SECONDS = 600.0

# Stop flags of the jobs running in this process: a cancel stops its download within
# one chunk instead of at the next progress flush.
_stop_flags: dict[int, threading.Event] = {}
_stop_flags_lock = threading.Lock()


def import_stop_signal(job_id: int) -> None:
    """Ask this process's thread running ``job_id`` (if any) to stop at the next chunk."""
    with _stop_flags_lock:
        flag = _stop_flags.get(job_id)
    if flag is not None:
        flag.set()


def _run_claimed(job: DownloadJob) -> None:
    """Run one attempt under the claim's token (``job.claimed_by``)."""
    flag = threading.Event()
    with _stop_flags_lock:
        _stop_flags[job.pk] = flag
    try:
        import_publish(job)
        job_execute(job, job.claimed_by, flag)
    finally:
        with _stop_flags_lock:
            if _stop_flags.get(job.pk) is flag:
                del _stop_flags[job.pk]


def import_job_run(job_id: int, *, worker: str | None = None) -> DownloadJob | None:
    """Claim ``job_id`` and carry out one attempt synchronously; the job afterwards.

    Returns None (and does nothing) when the job is not claimable: not queued and due,
    or running under a lease that has not expired.
    """
    worker = worker or WORKER_ID
    job = job_claim(worker=worker, job_id=job_id)
    if job is None:
        return None
    _run_claimed(job)
    return db_retry(
        lambda: DownloadJob.objects.select_related("owner", "result_version__model").get(pk=job_id)
    )


def import_partials_sweep() -> int:
    """Remove partial files nobody will resume; returns how many were removed.

    1. Failed or cancelled jobs finished more than MODELMGR_IMPORT_PARTIAL_KEEP_HOURS
       ago lose their partial file (a retry then starts from zero).
    2. ``import-*.part`` files in staging whose job is gone or no longer points at
       them, and that have not been touched for as long, are removed.
    """
    keep = timedelta(hours=settings.MODELMGR_IMPORT_PARTIAL_KEEP_HOURS)
    cutoff = timezone.now() - keep
    removed = 0
    stale = DownloadJob.objects.filter(
        state__in=(DownloadState.FAILED, DownloadState.CANCELLED), finished_at__lt=cutoff
    ).exclude(partial_path="")
    for job in stale:
        if DownloadJob.objects.filter(
            pk=job.pk, state=job.state, partial_path=job.partial_path
        ).update(partial_path="", bytes_done=0):
            partial_remove(job.partial_path)
            removed += 1
    referenced = set(
        DownloadJob.objects.exclude(partial_path="").values_list("partial_path", flat=True)
    )
    for path in Path(staging_dir()).glob(f"{PREFIX}*.part"):
        try:
            old = path.stat().st_mtime < cutoff.timestamp()
        except OSError:
            continue
        if old and str(path) not in referenced:
            partial_remove(path)
            removed += 1
    return removed


class ImportRunner:
    """The dispatcher: claims due jobs while threads are free, keeps their leases fresh."""

    def __init__(self, *, concurrency: int, worker: str = WORKER_ID):
        self.concurrency = max(1, concurrency)
        self.worker = worker
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._active: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._last_sweep = float("-inf")
        self._last_store_sweep = float("-inf")
        self._store_sweeper: threading.Thread | None = None
        self._thread = threading.Thread(target=self._loop, name="imports-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def wake(self) -> None:
        self._wake.set()

    def dispatch_once(self) -> int:
        """Claim and start jobs up to the free thread count; returns how many started."""
        started = 0
        while not self._stopping.is_set():
            with self._lock:
                if len(self._active) >= self.concurrency:
                    break
            job = job_claim(worker=self.worker)
            if job is None:
                break
            thread = threading.Thread(
                target=self._run, args=(job,), daemon=True, name=f"import-{job.pk}"
            )
            with self._lock:
                self._active[job.pk] = thread
            thread.start()
            started += 1
        return started

    def _run(self, job: DownloadJob) -> None:
        try:
            _run_claimed(job)
        except Exception:
            log.exception("import %s: runner thread failed", job.pk)
        finally:
            with self._lock:
                if self._active.get(job.pk) is threading.current_thread():
                    del self._active[job.pk]
            connections.close_all()
            self.wake()

    def store_sweep_if_due(self) -> threading.Thread | None:
        """Start a store sweep (``registry.gc.store_sweep``) in its own thread when one is
        due every MODELMGR_STORE_SWEEP_INTERVAL_S (0 = never) and none is running; the
        thread started, or None. Its own thread: listing a big store must not delay the
        heartbeats that keep this process's import leases."""
        interval = settings.MODELMGR_STORE_SWEEP_INTERVAL_S
        if interval <= 0 or time.monotonic() - self._last_store_sweep < interval:
            return None
        if self._store_sweeper is not None and self._store_sweeper.is_alive():
            return None
        self._last_store_sweep = time.monotonic()
        self._store_sweeper = threading.Thread(
            target=self._store_sweep, name="store-sweep", daemon=True
        )
        self._store_sweeper.start()
        return self._store_sweeper

    @staticmethod
    def _store_sweep() -> None:
        try:
            store_sweep(older_than_s=settings.MODELMGR_STORE_SWEEP_AGE_S)
        except Exception:
            log.warning("store sweep failed; the next one tries again", exc_info=True)
        finally:
            connections.close_all()

    def _wait_seconds(self) -> float:
        poll = settings.MODELMGR_IMPORT_POLL_SECONDS
        wait = min(poll, settings.MODELMGR_IMPORT_LEASE_SECONDS / 4)
        soonest = (
            DownloadJob.objects.filter(state=DownloadState.QUEUED, next_attempt_at__isnull=False)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        if soonest is not None:
            wait = min(wait, max((soonest - timezone.now()).total_seconds(), 0.05))
        return wait

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wait = settings.MODELMGR_IMPORT_POLL_SECONDS
            try:
                self.dispatch_once()
                job_heartbeat_all(worker=self.worker)
                progress_flush_stale()
                if time.monotonic() - self._last_sweep > SWEEP_EVERY_SECONDS:
                    self._last_sweep = time.monotonic()
                    import_partials_sweep()
                self.store_sweep_if_due()
                wait = self._wait_seconds()
            except Exception:  # the database may not be migrated or reachable yet
                log.warning("import runner: dispatch failed; trying again", exc_info=True)
            finally:
                connections.close_all()
            self._wake.wait(wait)
            self._wake.clear()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the downloads of this process and hand their jobs back to the queue.

        A restarted (or another) process then resumes them at once instead of waiting
        for the lease to expire.
        """
        self._stopping.set()
        self._wake.set()
        with self._lock:
            threads = dict(self._active)
        for job_id in threads:
            import_stop_signal(job_id)
        for thread in threads.values():
            thread.join(timeout / max(len(threads), 1))
        self._thread.join(timeout)
        if self._store_sweeper is not None:
            self._store_sweeper.join(timeout)
        try:
            claimed_by_worker(self.worker).update(
                state=DownloadState.QUEUED,
                claimed_by="",
                heartbeat_at=None,
                speed_bps=0.0,
                updated_at=timezone.now(),
            )
        except Exception:
            log.warning("import runner: could not hand back running jobs", exc_info=True)
        finally:
            connections.close_all()


_runner: ImportRunner | None = None
_runner_lock = threading.Lock()


def imports_runner_ensure_started() -> ImportRunner | None:
    """Start this process's runner once (a no-op when MODELMGR_IMPORT_RUNNER is off)."""
    global _runner
    if not settings.MODELMGR_IMPORT_RUNNER:
        return None
    with _runner_lock:
        if _runner is None or not _runner.is_alive():
            _runner = ImportRunner(concurrency=settings.MODELMGR_IMPORT_CONCURRENCY)
            _runner.start()
            atexit.register(_runner.stop)
        return _runner


def imports_runner_wake() -> None:
    """Nudge the runner (after a job is created or retried); starts it when needed."""
    runner = imports_runner_ensure_started()
    if runner is not None:
        runner.wake()


def imports_runner_stop() -> None:
    global _runner
    with _runner_lock:
        runner, _runner = _runner, None
    if runner is not None:
        atexit.unregister(runner.stop)
        runner.stop()
