"""Named locks shared by every thread and process that uses the same database.

The database is what all web processes (and their threads, each with its own
connection) have in common, so the locks live there: on PostgreSQL as advisory locks,
on SQLite (whose database sits on one host) in the kernel or in SQLite's own write lock.
Two kinds, for two shapes of critical section:

- ``session_lock(name, deadline)`` is held across transactions, for long work outside
  any transaction: the deploy switch holds it while the worker loads models (seconds to
  minutes), where an open transaction would block every writer on SQLite.

  1. PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``, polled),
     released explicitly and by the server when the connection dies.
  2. SQLite: an ``flock`` on ``<database>.<name>-lock``, released by the kernel when the
     process dies. Each holder opens the file itself, so threads exclude each other too.
  3. An in-memory SQLite database is private to its process: no lock.

- ``transaction_lock(name, timeout=...)`` is held until the current transaction ends,
  by COMMIT or ROLLBACK, however deeply the caller's ``atomic()`` is nested. It is for
  short sections whose end must coincide with a commit: the artifact store's lock is
  held from "this blob is there, my rows will reference it" until those rows are
  committed (``modelmgr.storage.store_lock``). A session lock cannot do that when the
  caller is nested in someone else's transaction: it would be released before the
  outer COMMIT, and on a rollback nothing would release it at all.

  1. PostgreSQL: a transaction-level advisory lock (``pg_try_advisory_xact_lock``,
     polled); the server releases it when the transaction ends, after the commit is
     visible to other sessions.
  2. SQLite: the database's write lock. SQLite has one writer at a time across every
     connection and process, so the write lock is already a database-wide mutex that
     COMMIT and ROLLBACK release; a no-op UPDATE takes it if BEGIN did not (our
     settings BEGIN IMMEDIATE). Waiting is bounded by the connection's busy timeout.
     Every name shares it: fine for short sections.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from modelmgr.exceptions import ModelmgrError

POLL_S = 0.05


class LockTimeout(ModelmgrError):
    """A lock stayed busy for longer than the caller would wait."""

    status = 503


def advisory_key(name: str) -> int:
    """A fixed pg_advisory_lock key per name: ascii ``mm`` + the name's first six
    characters in upper case (padded with ``_``) as a signed 64-bit integer
    ("switch" -> b"mmSWITCH", "store" -> b"mmSTORE_")."""
    raw = f"mm{name.upper()[:6]:_<6}".encode("ascii")
    return int.from_bytes(raw, "big", signed=True)


def poll(try_once: Callable[[], bool], deadline: float) -> bool:
    """Call ``try_once`` every POLL_S until it returns True or ``deadline`` (monotonic)."""
    while True:
        if try_once():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def sqlite_lock_path(name: str) -> Path | None:
    """The lock file of ``name`` beside the SQLite database; None for other databases
    and for an in-memory one (private to this process)."""
    if connection.vendor != "sqlite":
        return None
    database = str(connection.settings_dict.get("NAME") or "")
    if (
        not database
        or database == ":memory:"
        or database.startswith("file:")
        or "mode=memory" in database
    ):
        return None
    return Path(f"{database}.{name}-lock")


@contextmanager
def pg_session_lock(key: int, deadline: float) -> Iterator[bool]:
    """Yield whether the session advisory lock ``key`` was taken before ``deadline``."""

    def try_once() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            return bool(cursor.fetchone()[0])

    if not poll(try_once, deadline):
        yield False
        return
    try:
        yield True
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        except Exception:  # noqa: BLE001 - a dead connection released the lock already
            connection.close()


@contextmanager
def file_lock(path: Path, deadline: float) -> Iterator[bool]:
    """Yield whether an exclusive ``flock`` on ``path`` was taken before ``deadline``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_once() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        if not poll(try_once, deadline):
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def session_lock(name: str, deadline: float) -> Iterator[bool]:
    """Hold ``name``'s cross-process lock outside any transaction; yields whether it was
    taken before ``deadline`` (monotonic). Not re-entrant on SQLite."""
    if connection.vendor == "postgresql":
        with pg_session_lock(advisory_key(name), deadline) as held:
            yield held
    elif (path := sqlite_lock_path(name)) is not None:
        with file_lock(path, deadline) as held:
            yield held
    else:
        yield True


def transaction_lock(name: str, *, timeout: float, sqlite_table: str) -> None:
    """Take ``name``'s lock until the current transaction ends (call inside ``atomic()``).

    Re-entrant within a transaction. ``sqlite_table`` is any existing table with an
    ``id`` column: SQLite's write lock is taken by a no-op UPDATE of it. Raises
    LockTimeout (PostgreSQL) or OperationalError "database is locked" (SQLite's busy
    timeout) when it stays busy. Other databases are not supported: no lock.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("transaction_lock() is released by COMMIT: call it inside atomic()")
    if connection.vendor == "postgresql":
        key = advisory_key(name)

        def try_once() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
                return bool(cursor.fetchone()[0])

        if not poll(try_once, time.monotonic() + timeout):
            raise LockTimeout(f"the {name} lock stayed busy for {timeout:g} s; try again")
    elif connection.vendor == "sqlite":
        table = connection.ops.quote_name(sqlite_table)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET id = id WHERE 0")  # noqa: S608 - a table name
