"""One switch at a time, across threads and processes, without a long database transaction.

A switch waits for the worker to load models (seconds to minutes). Holding a row lock
for that long would keep a transaction open and block every writer on SQLite, so the
switch lock is held outside any transaction:

1. A process-wide ``threading.Lock`` serializes the threads of one web process (the API
   thread, the settings page's switch threads, the admin).
2. Across processes: on PostgreSQL a session-level advisory lock
   (``pg_try_advisory_lock``, polled), released explicitly and by the server when the
   connection dies; on SQLite, whose database lives on one host, an ``flock`` on a file
   beside the database, released by the kernel when the process dies.

The commit that follows the worker's swap is one short ``transaction.atomic()`` taken
while the lock is held. The worker serializes its own switches as well.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from modelmgr.deploy.errors import SlotErrors

POLL_S = 0.05
# A fixed key for pg_advisory_lock: ascii "mmSWITCH" as a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"mmSWITCH", "big", signed=True)

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


def _sqlite_lock_path() -> Path | None:
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None  # an in-memory database is private to this process
    return Path(f"{name}.switch-lock")


def _poll(try_once, deadline: float) -> bool:
    while True:
        if try_once():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


@contextmanager
def _pg_lock(deadline: float) -> Iterator[bool]:
    def try_once() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY])
            return bool(cursor.fetchone()[0])

    if not _poll(try_once, deadline):
        yield False
        return
    try:
        yield True
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_KEY])
        except Exception:  # noqa: BLE001 - a dead connection released the lock already
            connection.close()


@contextmanager
def _file_lock(path: Path, deadline: float) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_once() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        if not _poll(try_once, deadline):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


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
        if connection.vendor == "postgresql":
            outer = _pg_lock(deadline)
        elif (path := _sqlite_lock_path()) is not None:
            outer = _file_lock(path, deadline)
        else:
            outer = _no_lock()
        with outer as held:
            if not held:
                raise _busy(slots, timeout)
            _holder.update(switch_id=switch_id, since=time.monotonic())
            try:
                yield
            finally:
                _holder.clear()
    finally:
        _process_lock.release()


@contextmanager
def _no_lock() -> Iterator[bool]:
    yield True
