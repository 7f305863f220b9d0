"""tests/workerproc.py refuses setups where the worker could not see the test's rows."""

from __future__ import annotations

import pytest

from tests.workerproc import start_worker, worker_environment


@pytest.mark.django_db
def test_a_test_in_a_rolled_back_transaction_is_told_to_use_transaction_true():
    with pytest.raises(RuntimeError, match=r"use @pytest.mark.django_db\(transaction=True\)"):
        start_worker()


@pytest.mark.django_db(transaction=True)
def test_environment_points_at_the_test_database_and_artifact_store(settings):
    env = worker_environment()
    assert env["MODELMGR_ARTIFACT_ROOT"] == str(settings.ARTIFACT_ROOT)
    if "SQLITE_PATH" in env:
        assert env["SQLITE_PATH"] == settings.DATABASES["default"]["TEST"]["NAME"]
    else:
        assert env["DATABASE_URL"].rsplit("/", 1)[1].startswith("test_")
