"""The transaction-scoped lock: held until COMMIT or ROLLBACK, across connections.

Another process is played by another thread with its own database connection.
"""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection, transaction

from modelmgr.locks import LockTimeout, advisory_key, transaction_lock
from modelmgr.models import ArtifactFile

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30
TABLE = ArtifactFile._meta.db_table


def lock(timeout: float) -> None:
    transaction_lock("test", timeout=timeout, sqlite_table=TABLE)


@pytest.fixture
def short_busy_timeout():
    """SQLite waits for its write lock as long as the busy timeout: shorten it here."""
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        connection.connection.execute("PRAGMA busy_timeout = 200")
    yield
    connection.close()


def hold_in_other_connection(end: str):
    """Take the lock in another thread, hold it until told, then COMMIT or ROLLBACK."""
    held, release = threading.Event(), threading.Event()

    def other():
        try:
            with transaction.atomic():
                lock(WAIT_S)
                held.set()
                release.wait(WAIT_S)
                if end == "rollback":
                    transaction.set_rollback(True)
        finally:
            connection.close()

    thread = threading.Thread(target=other)
    thread.start()
    assert held.wait(WAIT_S)
    return release, thread


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_lock_is_refused_until_the_holders_transaction_ends(end, short_busy_timeout):
    release, thread = hold_in_other_connection(end)
    try:
        with pytest.raises((LockTimeout, OperationalError)), transaction.atomic():
            lock(0.2)
    finally:
        release.set()
        thread.join(WAIT_S)
    with transaction.atomic():
        lock(WAIT_S)  # free again, however the holder's transaction ended


def test_lock_is_reentrant_in_one_transaction():
    with transaction.atomic():
        lock(0.2)
        with transaction.atomic():
            lock(0.2)


def test_lock_outside_a_transaction_is_a_mistake():
    with pytest.raises(RuntimeError, match="inside atomic"):
        lock(0.2)


def test_advisory_keys_are_fixed_per_name():
    assert advisory_key("switch") == int.from_bytes(b"mmSWITCH", "big", signed=True)
    assert advisory_key("store") == int.from_bytes(b"mmSTORE_", "big", signed=True)
