"""Progress of a running download: throttled to the database and the events group.

The download thread reports every chunk; the database and the browsers hear about it
at most every MODELMGR_IMPORT_PROGRESS_INTERVAL. When the stream stalls after a burst,
the runner's dispatcher flushes the unsaved count (``progress_flush_stale``), so the
bar never sits on an old number while the speed decays to zero.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from modelmgr.imports.jobs import import_publish, job_save_running
from modelmgr.models import DownloadJob

SPEED_WINDOW_SECONDS = 3.0

_active: dict[str, ProgressTracker] = {}
_active_lock = threading.Lock()


class Stopped(Exception):
    """The job was cancelled, or is no longer ours (its lease was taken over)."""


class ProgressTracker:
    """Checks the in-process stop flag on every chunk, and the database on every flush
    (a cancel from another process shows up as zero rows updated)."""

    def __init__(self, job: DownloadJob, token: str, cancel: threading.Event):
        self.job = job
        self.token = token
        self.cancel = cancel
        self.interval = settings.MODELMGR_IMPORT_PROGRESS_INTERVAL
        self.last_flush = float("-inf")
        self.unsaved: int | None = None
        self.window: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def save(self, **fields) -> None:
        with self._lock:
            if not job_save_running(self.job, self.token, **fields):
                raise Stopped
            self.last_flush = time.monotonic()
        import_publish(self.job)

    def on_response(self, source, resumed: bool) -> None:
        fields = dict(
            etag=source.etag[:255],
            last_modified=source.last_modified,
            filename=source.filename,
            bytes_total=source.total,
        )
        if not resumed:
            fields["bytes_done"] = 0  # starting over: the bar must not show the old count
        self.save(**fields)

    def on_progress(self, size: int) -> None:
        if self.cancel.is_set():
            raise Stopped
        now = time.monotonic()
        self.window.append((now, size))
        if now - self.last_flush >= self.interval:
            self.flush(size)
        else:
            self.unsaved = size

    def flush(self, size: int) -> None:
        self.unsaved = None
        self.save(bytes_done=size, speed_bps=self.speed())

    def flush_if_stale(self) -> None:
        """From another thread: save a count the download thread has not saved yet."""
        size = self.unsaved
        if size is None or time.monotonic() - self.last_flush < self.interval:
            return
        try:
            self.flush(size)
        except Stopped:
            self.cancel.set()

    def speed(self) -> float:
        """Bytes per second over the last few seconds, up to now (a stall decays it)."""
        now = time.monotonic()
        window = [(t, b) for t, b in list(self.window) if now - t <= SPEED_WINDOW_SECONDS]
        while self.window and now - self.window[0][0] > SPEED_WINDOW_SECONDS:
            self.window.popleft()
        if len(window) < 2:
            return 0.0
        (t0, b0), (_t1, b1) = window[0], window[-1]
        return (b1 - b0) / (now - t0) if now > t0 else 0.0


@contextmanager
def tracking(tracker: ProgressTracker) -> Iterator[ProgressTracker]:
    with _active_lock:
        _active[tracker.token] = tracker
    try:
        yield tracker
    finally:
        with _active_lock:
            _active.pop(tracker.token, None)


def progress_flush_stale() -> None:
    """Flush the unsaved progress of this process's stalled downloads."""
    with _active_lock:
        trackers = list(_active.values())
    for tracker in trackers:
        tracker.flush_if_stale()
