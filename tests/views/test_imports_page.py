"""/imports: create an import from a URL, see its progress, cancel and retry it."""

from __future__ import annotations

import hashlib

import pytest

from modelmgr.imports.runner import import_job_run
from modelmgr.imports.services import import_create
from modelmgr.models import AuditEvent, DownloadJob, DownloadState, ModelVersion
from tests.views.conftest import HTMX

PATH = "/models/tiny.onnx"


@pytest.mark.django_db
def test_creating_an_import_queues_it_and_shows_its_row(owner_client, owner, server, onnx_data):
    server.add(PATH, onnx_data)
    digest = hashlib.sha256(onnx_data).hexdigest()
    response = owner_client.post(
        "/imports",
        {
            "url": server.url(PATH),
            "sha256": digest,
            "name": "tiny",
            "task": "classifier",
        },
        **HTMX,
    )
    html = response.content.decode()
    job = DownloadJob.objects.get()
    assert html.lstrip().startswith('<div id="jobs-area">')
    assert f"Import {job.pk} of tiny queued." in html
    assert f'<tr id="import-{job.pk}"' in html
    assert '<span class="badge queued">queued</span>' in html
    assert job.owner == owner and job.expected_sha256 == digest and job.task == "classifier"
    assert AuditEvent.objects.filter(action="import.create").count() == 1


@pytest.mark.django_db
def test_a_finished_import_shows_a_full_bar_and_links_the_version(
    owner_client, owner, server, onnx_data
):
    server.add(PATH, onnx_data)
    job = import_create(owner=owner, url=server.url(PATH), model_name="tiny", actor=owner)
    import_job_run(job.pk)
    html = owner_client.get("/imports").content.decode()
    assert '<span class="badge done">done</span>' in html
    assert 'aria-valuenow="100"' in html
    assert 'href="/models/tiny"' in html and "tiny@1" in html
    assert ModelVersion.objects.get().ref == "tiny@1"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "form, complaint",
    [
        ({"url": "ftp://example.org/m.onnx", "name": "m"}, "ftp"),
        ({"url": "not a url", "name": "m"}, "url:"),
        ({"url": "https://example.org/m.onnx", "name": "m", "sha256": "abc"}, "64 hex digits"),
        ({"url": "https://example.org/m.onnx", "name": "no spaces"}, "name:"),
    ],
)
def test_bad_input_is_a_red_error_and_creates_no_job(owner_client, form, complaint):
    html = owner_client.post("/imports", form, **HTMX).content.decode()
    assert 'class="msg err"' in html and complaint in html
    assert not DownloadJob.objects.exists()


@pytest.mark.django_db
def test_a_host_the_guard_refuses_is_named_in_red(owner_client, import_settings):
    html = owner_client.post(
        "/imports", {"url": "http://10.1.2.3/m.onnx", "name": "m"}, **HTMX
    ).content.decode()
    assert 'class="msg err"' in html and "10.1.2.3" in html
    assert not DownloadJob.objects.exists()


@pytest.mark.django_db
def test_cancel_then_retry_from_the_row(owner_client, owner, server, onnx_data):
    server.add(PATH, onnx_data)
    job = import_create(owner=owner, url=server.url(PATH), model_name="tiny", actor=owner)
    row = owner_client.post(f"/imports/{job.pk}/cancel", **HTMX).content.decode()
    assert row.lstrip().startswith(f'<tr id="import-{job.pk}"')
    assert '<span class="badge cancelled">cancelled</span>' in row and ">Retry<" in row
    row = owner_client.post(f"/imports/{job.pk}/retry", **HTMX).content.decode()
    assert '<span class="badge queued">queued</span>' in row and ">Cancel<" in row
    job.refresh_from_db()
    assert job.state == DownloadState.QUEUED
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["import.create", "import.cancel", "import.retry"]


@pytest.mark.django_db
def test_retrying_a_queued_job_is_refused_in_the_row(owner_client, owner, server, onnx_data):
    server.add(PATH, onnx_data)
    job = import_create(owner=owner, url=server.url(PATH), model_name="tiny", actor=owner)
    row = owner_client.post(f"/imports/{job.pk}/retry", **HTMX).content.decode()
    assert 'class="msg err small"' in row and "only a failed or cancelled" in row


@pytest.mark.django_db
def test_someone_elses_import_is_not_found(client, other_user, owner, server, onnx_data):
    server.add(PATH, onnx_data)
    job = import_create(owner=owner, url=server.url(PATH), model_name="tiny", actor=owner)
    client.force_login(other_user)
    assert client.post(f"/imports/{job.pk}/cancel", **HTMX).status_code == 404
    assert str(job.pk) not in client.get("/imports").content.decode().split("import-rows")[1][:200]
    job.refresh_from_db()
    assert job.state == DownloadState.QUEUED


@pytest.mark.django_db
def test_removing_a_finished_job_answers_an_empty_row(owner_client, owner, server, onnx_data):
    server.add(PATH, onnx_data)
    job = import_create(owner=owner, url=server.url(PATH), model_name="tiny", actor=owner)
    import_job_run(job.pk)
    response = owner_client.post(f"/imports/{job.pk}/delete", **HTMX)
    assert response.status_code == 200 and response.content == b""
    assert not DownloadJob.objects.exists()
    assert ModelVersion.objects.count() == 1  # the version an import made stays
