"""Admin actions go through the same services as the API and pages, with a message each."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, ModelVersion, Slot
from modelmgr.storage import content_store
from tests.views.support import ingested, serving_slot
from tests.workerproc import free_port, start_worker

VERSIONS = "/admin/modelmgr/modelversion/"
SLOTS = "/admin/modelmgr/slot/"


def run_action(client, url: str, action: str, *objects) -> str:
    response = client.post(
        url, {"action": action, "_selected_action": [o.pk for o in objects]}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


def confirm_rollback(client, slot, *, to: str, seen: str) -> str:
    """What the confirmation page posts back."""
    response = client.post(
        SLOTS,
        {
            "action": "rollback_slots",
            "confirm": "yes",
            "_selected_action": [slot.pk],
            f"to-{slot.name}": to,
            f"seen-{slot.name}": seen,
        },
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def v1(staff, model_files, tmp_path):
    return ingested(staff, model_files, tmp_path, version="1")


@pytest.mark.django_db
def test_the_actions_are_offered(staff_client, v1):
    html = staff_client.get(VERSIONS).content.decode()
    for action in ("activate_in_slot", "validate_versions", "verify_hashes", "archive_versions"):
        assert f'<option value="{action}">' in html
    serving_slot("classifier", v1)  # the admin offers actions only when there are rows
    assert '<option value="rollback_slots">' in staff_client.get(SLOTS).content.decode()


@pytest.mark.django_db
def test_verify_hashes_reports_intact_and_corrupt_versions(
    staff_client, staff, model_files, tmp_path, v1
):
    v2 = ingested(staff, model_files, tmp_path, version="2", seed=9)
    path = content_store().local_path(v2.files.get().sha256)
    path.write_bytes(path.read_bytes()[:-3] + b"bad")
    html = run_action(staff_client, VERSIONS, "verify_hashes", v1, v2)
    assert "Hashes intact: clf@1 (1 file(s))" in html
    assert "Integrity check failed: clf@2 (model.onnx), now in error" in html
    v2.refresh_from_db()
    assert v2.status == "error"


@pytest.mark.django_db
def test_archive_refuses_a_serving_version_and_archives_the_other(
    staff_client, staff, model_files, tmp_path, v1
):
    v2 = ingested(staff, model_files, tmp_path, version="2", seed=9)
    serving_slot("classifier", v1)
    html = run_action(staff_client, VERSIONS, "archive_versions", v1, v2)
    assert "Archived: clf@2" in html
    assert "Not archived: clf@1: version clf@1 cannot be archived: slot(s) classifier" in html
    assert ModelVersion.objects.get(pk=v2.pk).status == "archived"
    assert ModelVersion.objects.get(pk=v1.pk).status == "available"
    assert AuditEvent.objects.get(action="version.archive").actor_label == "stella (admin)"


@pytest.mark.django_db
def test_validate_without_a_worker_re_inspects(staff_client, v1, settings):
    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    html = run_action(staff_client, VERSIONS, "validate_versions", v1)
    assert "re-inspected instead" in html and 'class="success"' in html


@pytest.mark.django_db
def test_activate_with_no_slot_for_the_task_is_refused(staff_client, v1):
    html = run_action(staff_client, VERSIONS, "activate_in_slot", v1)
    assert "Nothing switched: clf@1: no slot serves task &#x27;classifier&#x27;" in html


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_activate_then_rollback_through_the_worker(
    staff_client, staff, model_files, tmp_path, settings, v1
):
    v2 = ingested(staff, model_files, tmp_path, version="2", seed=9)
    serving_slot("classifier", v1)
    with start_worker() as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        html = run_action(staff_client, VERSIONS, "activate_in_slot", v2)
        assert "Switched: classifier → stella/clf@2" in html
        assert Slot.objects.get().active_version == v2
        slot = Slot.objects.get()
        confirm = run_action(staff_client, SLOTS, "rollback_slots", slot)
        assert "from <code>stella/clf@2</code> back to <code>stella/clf@1</code>" in confirm
        assert Slot.objects.get().active_version == v2  # nothing happens before confirming
        html = confirm_rollback(staff_client, slot, to="stella/clf@1", seen="stella/clf@2")
        assert "Rolled back: classifier → clf@1" in html
        assert worker.client().get("/status").json()["slots"]["classifier"]["ref"] == "clf@1"
    actions = list(
        AuditEvent.objects.filter(target_type="slot").values_list("action", "actor_label")
    )
    assert sorted(actions) == [
        ("slot.rollback", "stella (admin)"),
        ("slot.switch", "stella (admin)"),
    ]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_confirmed_rollback_goes_to_the_version_named_or_is_refused(
    staff_client, staff, model_files, tmp_path, settings, v1
):
    from modelmgr.deploy.services import slots_switch

    v2 = ingested(staff, model_files, tmp_path, version="2", seed=9)
    ingested(staff, model_files, tmp_path, version="3", seed=8)
    serving_slot("classifier", v1)
    with start_worker() as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        slots_switch(assignments={"classifier": "clf@2"}, actor=staff, actor_label="bob")
        slot = Slot.objects.get()
        confirm = run_action(staff_client, SLOTS, "rollback_slots", slot)
        assert "back to <code>stella/clf@1</code>" in confirm
        # Before stella confirms, bob moves on: clf@1 is no longer the previous version.
        slots_switch(assignments={"classifier": "clf@3"}, actor=staff, actor_label="bob")
        html = confirm_rollback(staff_client, slot, to="stella/clf@1", seen="stella/clf@2")
        assert "Not rolled back: classifier: rollback refused, nothing changed: slot " in html
        assert "can no longer roll back to stella/clf@1" in html and "changed by bob" in html
        assert Slot.objects.get().active_version.version == "3"
        assert v2.pk == Slot.objects.get().previous_version_id
    refused = AuditEvent.objects.get(outcome="refused")
    assert (refused.action, refused.actor_label) == ("slot.rollback", "stella (admin)")


IMPORTS = "/admin/modelmgr/downloadjob/"


@pytest.mark.django_db
def test_imports_can_be_cancelled_and_retried_from_the_admin(staff_client, staff):
    from modelmgr.models import DownloadJob

    queued = DownloadJob.objects.create(
        owner=staff, model_name="far-model", url="https://models.example/far.onnx"
    )
    done = DownloadJob.objects.create(
        owner=staff, model_name="done-model", url="https://models.example/d.onnx", state="done"
    )
    listing = staff_client.get(IMPORTS).content.decode()
    assert "far-model" in listing and '<option value="cancel_imports">' in listing

    html = run_action(staff_client, IMPORTS, "cancel_imports", queued, done)
    assert f"Cancelled: import {queued.pk}" in html
    assert f"Not cancelled: import {done.pk} is done" in html
    queued.refresh_from_db()
    assert queued.state == "cancelled"
    assert AuditEvent.objects.filter(
        action="import.cancel", target=f"stella/import/{queued.pk}"
    ).exists()

    html = run_action(staff_client, IMPORTS, "retry_imports", queued)
    assert f"Queued again: import {queued.pk}" in html
    queued.refresh_from_db()
    assert queued.state == "queued"
