"""import_create / cancel / retry / delete: validation, state rules, audit, events."""

from __future__ import annotations

import pytest

from modelmgr.exceptions import VersionConflict
from modelmgr.imports.netguard import BadImportURL, ImportRefused
from modelmgr.imports.partial import partial_size
from modelmgr.imports.runner import import_job_run
from modelmgr.imports.services import import_cancel, import_delete, import_retry
from modelmgr.models import AuditEvent, DownloadJob, DownloadState
from modelmgr.registry.validation import InvalidInput

pytestmark = pytest.mark.django_db

PATH = "/models/tiny.onnx"


def assert_no_job_recorded() -> None:
    assert DownloadJob.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/model.onnx",
        "http://10.0.0.5/model.onnx",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[::1]/model.onnx",
        "http://[::ffff:127.0.0.1]/model.onnx",
        "http://[::ffff:10.0.0.5]/model.onnx",
        "http://[fe80::1]/model.onnx",
        "http://0.0.0.0/model.onnx",
    ],
)
def test_private_and_local_addresses_are_refused_at_once(import_settings, create_job, url):
    import_settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []
    with pytest.raises(ImportRefused) as caught:
        create_job(url)
    assert caught.value.status == 422
    assert_no_job_recorded()


def test_private_address_is_accepted_when_private_imports_are_allowed(import_settings, create_job):
    import_settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []
    import_settings.MODELMGR_IMPORT_ALLOW_PRIVATE = True
    assert create_job("http://10.0.0.5/model.onnx").state == DownloadState.QUEUED


def test_host_outside_the_allow_list_is_refused(import_settings, create_job):
    import_settings.MODELMGR_IMPORT_ALLOWED_HOSTS = ["huggingface.co", "*.hf.co"]
    with pytest.raises(ImportRefused, match="'example.org' is not in the import allow-list"):
        create_job("https://example.org/model.onnx")
    assert_no_job_recorded()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/m.onnx",
        "file:///etc/passwd",
        "not a url",
        "https://user:pw@example.org/m.onnx",
    ],
)
def test_malformed_or_non_http_urls_are_a_bad_request(import_settings, create_job, url):
    with pytest.raises(BadImportURL) as caught:
        create_job(url)
    assert caught.value.status == 400
    assert_no_job_recorded()


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"model_name": "bad name!"}, "model name"),
        ({"task": "juggling"}, "task"),
        ({"version": "../1"}, "version"),
        ({"expected_sha256": "abc"}, "sha256"),
    ],
)
def test_invalid_fields_are_refused(server, create_job, kwargs, problem):
    with pytest.raises(InvalidInput, match=problem):
        create_job(server.url(PATH), **kwargs)
    assert_no_job_recorded()


def test_version_that_exists_is_refused_before_downloading(server, onnx_data, create_job):
    server.add(PATH, onnx_data)
    first = create_job(server.url(PATH), version="2")
    import_job_run(first.pk)

    with pytest.raises(VersionConflict, match="imported@2 already exists"):
        create_job(server.url("/other.onnx"), version="2")


def test_same_import_twice_while_the_first_is_queued_is_refused(server, create_job):
    first = create_job(server.url(PATH))
    with pytest.raises(VersionConflict, match=f"import {first.pk} .* already queued"):
        create_job(server.url(PATH))
    assert DownloadJob.objects.count() == 1


def test_create_is_audited_without_the_query_string(server, create_job, owner):
    job = create_job(server.url(PATH) + "?X-Amz-Signature=s3cr3t", expected_sha256="a" * 64)

    event = AuditEvent.objects.get(action="import.create")
    assert event.actor == owner
    assert event.target == f"olivia/import/{job.pk}"
    assert event.after["url"] == server.url(PATH)
    assert job.expected_sha256 == "a" * 64


def test_create_announces_the_queued_job(
    server, create_job, events, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = create_job(server.url(PATH))

    [event] = events.import_events(job.pk)
    assert event["state"] == "queued"
    assert event["can_cancel"] is True


def test_cancel_a_queued_import(server, create_job, owner):
    job = create_job(server.url(PATH))

    cancelled = import_cancel(job=job, actor=owner)

    assert cancelled.state == DownloadState.CANCELLED
    assert cancelled.finished_at is not None
    assert AuditEvent.objects.filter(action="import.cancel").count() == 1
    assert import_job_run(job.pk) is None  # the runner leaves it alone


def test_cancel_of_a_finished_import_is_a_conflict(server, onnx_data, create_job, owner):
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH))
    import_job_run(job.pk)

    with pytest.raises(VersionConflict, match="is done"):
        import_cancel(job=job, actor=owner)


def test_retry_of_a_failed_import_resumes_from_its_partial(
    server, onnx_data, create_job, owner, settings
):
    settings.MODELMGR_IMPORT_MAX_ATTEMPTS = 1
    server.add(PATH, onnx_data, drop_after=2000)
    job = create_job(server.url(PATH))
    failed = import_job_run(job.pk)
    assert failed.state == DownloadState.FAILED
    assert "retry resumes from byte 2000" in failed.error

    queued = import_retry(job=failed, actor=owner)

    assert (queued.state, queued.attempts, queued.error, queued.bytes_done) == (
        DownloadState.QUEUED,
        0,
        "",
        2000,
    )
    done = import_job_run(job.pk)
    assert done.state == DownloadState.DONE, done.error
    assert server.requests_for(PATH)[1].header("Range") == "bytes=2000-"
    assert AuditEvent.objects.filter(action="import.retry").count() == 1


def test_retry_of_a_queued_import_is_a_conflict(server, create_job, owner):
    job = create_job(server.url(PATH))
    with pytest.raises(VersionConflict, match="only a failed or cancelled"):
        import_retry(job=job, actor=owner)


def test_delete_removes_the_job_and_its_partial(
    server, onnx_data, create_job, owner, isolated_storage, django_capture_on_commit_callbacks
):
    server.add(PATH, onnx_data, drop_after=1000)
    job = create_job(server.url(PATH))
    queued = import_job_run(job.pk)
    cancelled = import_cancel(job=queued, actor=owner)
    assert partial_size(cancelled.partial_path) == 1000

    with django_capture_on_commit_callbacks(execute=True):
        import_delete(job=cancelled, actor=owner)

    assert not DownloadJob.objects.filter(pk=job.pk).exists()
    assert partial_size(cancelled.partial_path) == 0
    assert AuditEvent.objects.filter(action="import.delete").count() == 1


def test_delete_of_an_active_import_is_a_conflict(server, create_job, owner):
    job = create_job(server.url(PATH))
    with pytest.raises(VersionConflict, match="cancel it before deleting"):
        import_delete(job=job, actor=owner)
