"""A version verify put in error comes back when its bytes are repaired, and the audit
names the token a verify was made with."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, ModelVersion
from modelmgr.storage import content_store
from tests.views.conftest import HTMX
from tests.views.support import ingested
from tests.workerproc import start_worker

VERSION = "/api/v1/models/clf/versions/1"


@pytest.fixture
def clf(owner, model_files, tmp_path):
    return ingested(owner, model_files, tmp_path, version="1")


def _damage(version: ModelVersion) -> bytes:
    """Flip the stored blob's first bytes; returns the good bytes to repair it with."""
    path = content_store().local_path(version.files.get().sha256)
    good = path.read_bytes()
    path.write_bytes(b"garbage" + good[7:])
    return good


def _repair(version: ModelVersion, good: bytes) -> None:
    content_store().local_path(version.files.get().sha256).write_bytes(good)


@pytest.mark.django_db
def test_a_verify_made_with_a_token_is_audited_with_the_token_name(api, clf):
    assert api.post(VERSION + "/verify").json()["ok"] is True
    event = AuditEvent.objects.get(action="version.verify")
    assert event.actor_label == "olivia (token robot)"


@pytest.mark.django_db
def test_a_repaired_version_is_available_again_after_verify_and_downloads(api, clf):
    good = _damage(clf)
    assert api.post(VERSION + "/verify").json()["ok"] is False
    assert api.get(VERSION).json()["status"] == "error"
    assert api.get(VERSION + "/files/model.onnx").status_code == 409

    _repair(clf, good)
    assert api.post(VERSION + "/verify").json()["ok"] is True
    shown = api.get(VERSION).json()
    assert shown["status"] == "available" and not shown.get("error")
    download = api.get(VERSION + "/files/model.onnx")
    assert download.status_code == 200 and b"".join(download.streaming_content) == good
    last = AuditEvent.objects.filter(action="version.verify").order_by("-id").first()
    assert last.before == {"status": "error"} and last.after["status"] == "available"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_validate_of_a_repaired_version_load_tests_it_in_the_running_worker(
    owner_client, clf, settings
):
    good = _damage(clf)
    url = "/models/clf/versions/1/"
    assert "now in error" in owner_client.post(url + "verify", **HTMX).content.decode()
    _repair(clf, good)
    with start_worker() as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        html = owner_client.post(url + "validate", **HTMX).content.decode()
    assert "No worker to load it in" not in html
    assert 'class="msg ok"' in html and "answered a dummy input" in html, html
    assert ModelVersion.objects.get(pk=clf.pk).status == "available"


@pytest.mark.django_db
def test_validate_of_an_archived_version_says_why_it_was_not_loaded(owner_client, clf, settings):
    ModelVersion.objects.filter(pk=clf.pk).update(status="archived")
    html = owner_client.post("/models/clf/versions/1/validate", **HTMX).content.decode()
    assert "No worker to load it in" not in html
    assert "Not loaded in the worker because it is archived" in html
