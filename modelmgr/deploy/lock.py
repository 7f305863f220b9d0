"""One switch at a time, across threads and processes, without a long database transaction.

A switch waits for the worker to load models (seconds to minutes). Holding a row lock
for that long would keep a transaction open and block every writer on SQLite, so the
switch lock is held outside any transaction:

1. A process-wide ``threading.Lock`` serializes the threads of one web process (the API
   thread, the settings page's switch threads, the admin).
2. Across processes, ``modelmgr.locks.session_lock("switch")``: on PostgreSQL a
   session-level advisory lock (``pg_try_advisory_lock``, polled), released explicitly
   and by the server when the connection dies; on SQLite, whose database lives on one
   host, an ``flock`` on a file beside the database, released by the kernel when the
   process dies.

The commit that follows the worker's swap is one short ``transaction.atomic()`` taken
while the lock is held. The worker serializes its own switches as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from modelmgr.deploy.errors import SlotErrors
from modelmgr.locks import advisory_key, file_lock, pg_session_lock, session_lock, sqlite_lock_path

LOCK_NAME = "switch"
# The pg_advisory_lock key: ascii "mmSWITCH" as a signed 64-bit integer.
ADVISORY_KEY = advisory_key(LOCK_NAME)

_process_lock = threading.Lock()
_holder: dict[str, object] = {}


def _busy(slots: list[str], timeout: float) -> SlotErrors:
    who = _holder.get("switch_id")
    since = _holder.get("since")
    running = (
        f" (switch {who}, running for {time.monotonic() - since:.0f} s)"
        if who and isinstance(since, float)
        else ""
    )
    cause = f"another switch is in progress{running}; waited {timeout:g} s, try again"
    return SlotErrors(
        f"switch refused, nothing changed: {cause}", slots=dict.fromkeys(slots, cause), status=409
    )


# The cross-process part on its own (tests/deploy/test_deploy_lock.py plays two processes).
def _sqlite_lock_path() -> Path | None:
    return sqlite_lock_path(LOCK_NAME)


def _pg_lock(deadline: float):
    return pg_session_lock(ADVISORY_KEY, deadline)


_file_lock = file_lock


@contextmanager
def switch_lock(
    *, switch_id: str, slots: list[str], timeout: float | None = None
) -> Iterator[None]:
    """Hold the switch lock; raise SlotErrors (409) after ``timeout`` seconds of waiting."""
    timeout = settings.MODELMGR_SWITCH_LOCK_TIMEOUT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    if not _process_lock.acquire(timeout=max(timeout, 0)):
        raise _busy(slots, timeout)
    try:
        with session_lock(LOCK_NAME, deadline) as held:
            if not held:
                raise _busy(slots, timeout)
            _holder.update(switch_id=switch_id, since=time.monotonic())
            try:
                yield
            finally:
                _holder.clear()
    finally:
        _process_lock.release()
