"""Downloads against a real local HTTP server: versions, progress, resume, limits, redirects."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from modelmgr.imports.partial import partial_size
from modelmgr.imports.runner import import_job_run
from modelmgr.models import AuditEvent, DownloadJob, DownloadState, ModelVersion
from tests.imports.conftest import assert_nothing_stored, staged_files

pytestmark = pytest.mark.django_db

PATH = "/models/tiny.onnx"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_import_creates_a_version_holding_the_downloaded_bytes(
    server, onnx_data, create_job, isolated_storage
):
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH), version="1.0", task="regressor")

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert done.result_version.ref == "imported@1.0"
    assert (done.bytes_done, done.bytes_total, done.sha256) == (
        len(onnx_data),
        len(onnx_data),
        sha(onnx_data),
    )
    version = ModelVersion.objects.get()
    assert version.framework == "onnx"
    assert version.source_uri == server.url(PATH)
    assert version.model.task == "regressor"
    [artifact] = version.files.all()
    assert (artifact.path, artifact.sha256, artifact.is_primary) == (
        "tiny.onnx",
        sha(onnx_data),
        True,
    )
    assert staged_files(isolated_storage) == []
    assert done.partial_path == ""
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"import.create", "import.done", "version.create"} <= actions
    assert server.requests[0].header("Accept-Encoding") == "identity"


def test_progress_events_report_growing_byte_counts(server, onnx_data, create_job, events):
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH) + "?token=secret-signature")

    import_job_run(job.pk)

    seen = events.import_events(job.pk, until_state="done")
    running = [e["bytes_done"] for e in seen if e["state"] == "running"]
    assert len(set(running)) >= 3
    assert running == sorted(running)
    assert running[-1] == len(onnx_data)
    final = seen[-1]
    assert final["state"] == "done"
    assert final["result"] == "imported@1"
    assert final["progress"] == 1.0
    assert final["bytes_total"] == len(onnx_data)
    # Events reach every browser: the pre-signed query string never travels with them.
    assert all("secret-signature" not in e["url"] for e in seen)


def test_interrupted_download_resumes_with_a_range_request(
    server, onnx_data, create_job, isolated_storage
):
    server.add(PATH, onnx_data, drop_after=1000)
    job = create_job(server.url(PATH))

    first = import_job_run(job.pk)

    assert first.state == DownloadState.QUEUED
    assert first.bytes_done == 1000
    assert "1000" in first.error and "retrying" in first.error
    assert partial_size(first.partial_path) == 1000

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert done.attempts == 2
    second = server.requests_for(PATH)[1]
    assert second.header("Range") == "bytes=1000-"
    assert second.header("If-Range") == '"v1"'
    artifact = done.result_version.files.get()
    assert artifact.sha256 == sha(onnx_data)
    assert staged_files(isolated_storage) == []


def test_resume_starts_over_when_the_file_changed_on_the_server(
    server, onnx_data, create_job, model_files, tmp_path
):
    served = server.add(PATH, onnx_data, drop_after=1000)
    job = create_job(server.url(PATH))
    import_job_run(job.pk)
    changed = model_files.onnx(tmp_path / "other" / "model.onnx", seed=7).read_bytes()
    served.data, served.etag = changed, '"v2"'

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert server.requests_for(PATH)[1].header("If-Range") == '"v1"'
    assert done.result_version.files.get().sha256 == sha(changed)


def test_resume_without_validators_downloads_from_zero(server, onnx_data, create_job):
    server.add(PATH, onnx_data, drop_after=1000, etag=None, last_modified=None)
    job = create_job(server.url(PATH))
    import_job_run(job.pk)

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert server.requests_for(PATH)[1].header("Range") is None
    assert done.result_version.files.get().sha256 == sha(onnx_data)


def test_expected_sha256_match_is_accepted(server, onnx_data, create_job):
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH), expected_sha256=sha(onnx_data).upper())

    assert import_job_run(job.pk).state == DownloadState.DONE


def test_expected_sha256_mismatch_fails_and_keeps_nothing(
    server, onnx_data, create_job, isolated_storage
):
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH), expected_sha256="0" * 64)

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert sha(onnx_data) in failed.error and "0" * 64 in failed.error
    assert "nothing was stored" in failed.error
    assert failed.partial_path == ""
    assert_nothing_stored(isolated_storage)
    assert AuditEvent.objects.filter(action="import.fail", outcome="error").count() == 1


def test_declared_size_over_the_limit_is_refused_before_the_body(
    server, onnx_data, create_job, settings, isolated_storage
):
    settings.MODELMGR_IMPORT_MAX_BYTES = 1000
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert f"{len(onnx_data)} bytes, over the import limit of 1000 bytes" in failed.error
    assert failed.attempts == 1
    assert_nothing_stored(isolated_storage)


def test_undeclared_size_over_the_limit_stops_the_stream(
    server, onnx_data, create_job, settings, isolated_storage
):
    settings.MODELMGR_IMPORT_MAX_BYTES = 1000
    server.add(PATH, onnx_data, send_length=False)
    job = create_job(server.url(PATH))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert "over the import limit of 1000 bytes" in failed.error
    assert_nothing_stored(isolated_storage)


def test_download_without_a_length_completes(server, onnx_data, create_job):
    server.add(PATH, onnx_data, send_length=False)
    job = create_job(server.url(PATH))

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert done.bytes_total == len(onnx_data)


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.7/model.onnx",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/models/tiny.onnx",
        "http://[::ffff:10.0.0.1]/model.onnx",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
    ],
)
def test_redirect_to_a_private_address_is_refused(
    server, onnx_data, create_job, target, isolated_storage
):
    server.add(PATH, onnx_data)
    server.add("/go", redirect=target.format(port=server.port))
    job = create_job(server.url("/go"))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert "refused" in failed.error
    assert failed.attempts == 1
    assert [r.path for r in server.requests] == ["/go"]
    assert_nothing_stored(isolated_storage)


def test_redirects_are_followed_and_the_requested_name_is_kept(server, onnx_data, create_job):
    server.add("/org/repo/resolve/main/model.onnx", redirect="/cdn/7f3a9c")
    server.add("/cdn/7f3a9c", onnx_data)
    job = create_job(server.url("/org/repo/resolve/main/model.onnx"))

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert done.filename == "model.onnx"
    assert done.result_version.files.get().path == "model.onnx"


def test_content_disposition_names_the_file(server, onnx_data, create_job):
    server.add("/download", onnx_data, disposition='attachment; filename="detector v2.onnx"')
    job = create_job(server.url("/download?id=42"))

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert done.result_version.files.get().path == "detector_v2.onnx"


def test_too_many_redirects_fail(server, create_job, settings):
    for hop in range(8):
        server.add(f"/r{hop}", redirect=f"/r{hop + 1}")
    job = create_job(server.url("/r0"))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert f"more than {settings.MODELMGR_IMPORT_MAX_REDIRECTS} redirects" in failed.error
    assert len(server.requests) == settings.MODELMGR_IMPORT_MAX_REDIRECTS + 1


def test_missing_file_fails_at_once(server, create_job):
    job = create_job(server.url("/nope.onnx"))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert "404" in failed.error
    assert failed.attempts == 1


def test_server_errors_are_retried_then_give_up(server, create_job, settings):
    settings.MODELMGR_IMPORT_MAX_ATTEMPTS = 2
    server.add(PATH, status=503)
    job = create_job(server.url(PATH))

    first = import_job_run(job.pk)
    assert first.state == DownloadState.QUEUED
    assert "503" in first.error and "attempt 1 of 2" in first.error

    final = import_job_run(job.pk)
    assert final.state == DownloadState.FAILED
    assert "gave up after 2 attempts" in final.error


def test_zip_download_is_unpacked_into_the_version(server, onnx_data, create_job):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bundle/model.onnx", onnx_data)
        archive.writestr("bundle/README.md", "tiny model")
    server.add("/bundle.zip", buffer.getvalue())
    job = create_job(server.url("/bundle.zip"))

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    paths = sorted(done.result_version.files.values_list("path", flat=True))
    assert paths == ["README.md", "model.onnx"]
    assert done.result_version.primary_file.path == "model.onnx"


def test_file_refused_by_ingest_fails_the_job_and_keeps_nothing(
    server, create_job, isolated_storage
):
    server.add("/broken.onnx", b"this is not an onnx model" * 40)
    job = create_job(server.url("/broken.onnx"))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert failed.error.startswith("the downloaded file was refused:")
    assert_nothing_stored(isolated_storage)


def test_version_taken_while_downloading_fails_with_the_conflict(
    server, onnx_data, create_job, isolated_storage
):
    server.add(PATH, onnx_data)
    first = create_job(server.url(PATH), version="1")
    assert import_job_run(first.pk).state == DownloadState.DONE
    second = DownloadJob.objects.create(
        owner=first.owner, url=server.url(PATH), model_name="imported", version="1"
    )

    failed = import_job_run(second.pk)

    assert failed.state == DownloadState.FAILED
    assert "already has version 1" in failed.error
    assert ModelVersion.objects.count() == 1
    assert staged_files(isolated_storage) == []
    assert not Path(failed.partial_path or "/nonexistent").exists()


def test_progress_writes_are_throttled(server, onnx_data, create_job, events, settings):
    settings.MODELMGR_IMPORT_PROGRESS_INTERVAL = 3600.0
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH))

    import_job_run(job.pk)

    seen = events.import_events(job.pk, until_state="done")
    # Claimed, opened, response headers: then nothing until the end, whatever the chunks.
    assert len([e for e in seen if e["state"] == "running"]) <= 3
    assert len(onnx_data) // settings.MODELMGR_STREAM_CHUNK_BYTES > 10
