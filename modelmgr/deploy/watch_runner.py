"""The threads of a health watch (modelmgr.deploy.watch) in the web process: the watcher
that steps a watch until its verdict, and a heartbeat kept while a rollback runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from modelmgr.models import SwitchWatch, WatchState

log = logging.getLogger("modelmgr.deploy.watch")


def poll_s() -> float:
    return float(getattr(settings, "MODELMGR_WATCH_POLL_S", 1.0))


def watch_thread_start(watch_id: int, *, step: Callable[[int], bool]) -> None:
    threading.Thread(
        target=_watch_loop, args=(watch_id, step), name=f"watch-{watch_id}", daemon=True
    ).start()


class Heartbeat:
    """Beats for a watch while its rollback runs (a large model loads for longer than
    MODELMGR_WATCH_STALE_S): the watch must not look abandoned meanwhile."""

    def __init__(self, watch_id: int):
        self.watch_id = watch_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._done.wait(poll_s()):
                SwitchWatch.objects.filter(pk=self.watch_id, state=WatchState.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        except Exception:  # noqa: BLE001 - a missed beat only risks an early 'abandoned'
            log.warning("watch %s: heartbeat failed", self.watch_id, exc_info=True)
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def _watch_loop(watch_id: int, step: Callable[[int], bool]) -> None:
    """The watcher thread: step until a verdict; a failing step (the database away for
    a moment) is retried; a thread that stops for good leaves a stale heartbeat."""
    try:
        while True:
            close_old_connections()
            try:
                if step(watch_id):
                    return
            except SwitchWatch.DoesNotExist:
                return
            except Exception:  # noqa: BLE001 - retried at the next poll
                log.warning("watch %s: step failed", watch_id, exc_info=True)
            time.sleep(poll_s())
    finally:
        connections.close_all()
