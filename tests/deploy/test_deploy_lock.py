"""The switch lock across processes: PostgreSQL advisory lock or a file lock on SQLite.

Another process is played by another thread with its own database connection and its
own file descriptor, which is what the database and the kernel tell processes apart by.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from modelmgr.deploy import lock

pytestmark = pytest.mark.django_db(transaction=True)


def outer_lock(deadline: float):
    if connection.vendor == "postgresql":
        return lock._pg_lock(deadline)
    return lock._file_lock(lock._sqlite_lock_path(), deadline)


def test_a_second_holder_is_refused_until_the_first_lets_go():
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def other_process():
        try:
            with outer_lock(time.monotonic()) as got:
                assert got
                held.set()
                release.wait(60)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=other_process)
    thread.start()
    try:
        assert held.wait(60)
        with outer_lock(time.monotonic()) as got:
            assert got is False
    finally:
        release.set()
        thread.join(60)
    assert done.is_set()
    with outer_lock(time.monotonic() + 30) as got:
        assert got is True
