"""The store sweep: old staging files and old unreferenced blobs go, the rest stays."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from modelmgr.imports.runner import ImportRunner
from modelmgr.models import DownloadJob
from modelmgr.registry.gc import store_sweep
from modelmgr.storage import content_store
from tests.registry.factories import make_model, make_version, store_bytes

pytestmark = pytest.mark.django_db

HOUR = 3600.0


def age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def staging_file(name: str, data: bytes, *, old: bool) -> Path:
    path = Path(settings.STAGING_ROOT) / name
    path.write_bytes(data)
    return age(path, 2 * HOUR) if old else path


def blob(data: bytes, *, old: bool) -> str:
    sha256, _ = store_bytes(data)
    if old:
        age(content_store().local_path(sha256), 2 * HOUR)
    return sha256


def referenced_blob(owner, *, old: bool) -> str:
    version = make_version(make_model(owner), files={"w.bin": b"a version uses these bytes"})
    sha256 = version.files.get().sha256
    if old:
        age(content_store().local_path(sha256), 2 * HOUR)
    return sha256


@pytest.fixture
def leftovers(owner):
    """One of each: what a sweep one hour back removes, and what it must keep."""
    return {
        "old_stage": staging_file("stage-crashed.part", b"left by a crash", old=True),
        "fresh_stage": staging_file("stage-uploading.part", b"still arriving", old=False),
        "old_blob": blob(b"put, then the process died before COMMIT", old=True),
        "fresh_blob": blob(b"put a moment ago", old=False),
        "used_blob": referenced_blob(owner, old=True),
    }


def test_sweep_removes_old_staging_files_and_old_unreferenced_blobs(leftovers):
    result = store_sweep(older_than_s=HOUR)

    assert result.staging == [(str(leftovers["old_stage"]), len(b"left by a crash"))]
    assert result.blobs == [
        (leftovers["old_blob"], len(b"put, then the process died before COMMIT"))
    ]
    assert (result.staging_bytes, result.blob_bytes) == (15, 40)
    store = content_store()
    assert not leftovers["old_stage"].exists() and not store.exists(leftovers["old_blob"])
    assert leftovers["fresh_stage"].exists()
    assert store.exists(leftovers["fresh_blob"])
    store.verify(leftovers["used_blob"])


def test_dry_run_reports_the_same_and_removes_nothing(leftovers):
    dry = store_sweep(older_than_s=HOUR, dry_run=True)

    assert dry.dry_run
    assert dry.staging == [(str(leftovers["old_stage"]), 15)]
    assert dry.blobs == [(leftovers["old_blob"], 40)]
    assert leftovers["old_stage"].exists()
    assert content_store().exists(leftovers["old_blob"])


def test_sweep_keeps_the_partial_file_an_import_will_resume(owner):
    partial = staging_file("import-7.part", b"first half of a download", old=True)
    DownloadJob.objects.create(
        owner=owner, model_name="imported", url="https://example.org/m.onnx", partial_path=partial
    )
    orphan = staging_file("import-8.part", b"its job is gone", old=True)

    assert [path for path, _ in store_sweep(older_than_s=HOUR).staging] == [str(orphan)]
    assert partial.exists()


def test_sweep_of_an_empty_store_removes_nothing():
    result = store_sweep(older_than_s=0)
    assert (result.staging, result.blobs) == ([], [])


def test_command_prints_what_it_removed(leftovers):
    out = io.StringIO()
    call_command("store_sweep", "--older-than", "3600", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines == [
        f"removed staging file {leftovers['old_stage']} (15 bytes)",
        f"removed unreferenced blob {leftovers['old_blob']} (40 bytes)",
        "removed 1 staging file(s) (15 bytes) and 1 unreferenced blob(s) (40 bytes) "
        "older than 3600 s",
    ]
    assert not leftovers["old_stage"].exists()


def test_command_dry_run_says_what_it_would_remove(leftovers, settings):
    settings.MODELMGR_STORE_SWEEP_AGE_S = HOUR  # the default age
    out = io.StringIO()
    call_command("store_sweep", "--dry-run", stdout=out)

    assert out.getvalue().splitlines()[-1] == (
        "would remove 1 staging file(s) (15 bytes) and 1 unreferenced blob(s) (40 bytes) "
        "older than 3600 s"
    )
    assert leftovers["old_stage"].exists()
    assert content_store().exists(leftovers["old_blob"])


@pytest.mark.django_db(transaction=True)
def test_web_process_runner_sweeps_when_due(leftovers, settings):
    settings.MODELMGR_STORE_SWEEP_INTERVAL_S = HOUR
    settings.MODELMGR_STORE_SWEEP_AGE_S = HOUR
    runner = ImportRunner(concurrency=1)

    sweeper = runner.store_sweep_if_due()
    assert sweeper is not None
    sweeper.join(30)
    assert not leftovers["old_stage"].exists()
    assert not content_store().exists(leftovers["old_blob"])
    assert runner.store_sweep_if_due() is None  # the next one is an hour away


def test_runner_never_sweeps_when_the_interval_is_zero(settings):
    settings.MODELMGR_STORE_SWEEP_INTERVAL_S = 0
    assert ImportRunner(concurrency=1).store_sweep_if_due() is None
