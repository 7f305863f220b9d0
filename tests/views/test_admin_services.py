"""Every change made in the Django admin goes through the registry services, as the API's.

Deletes are refused while a slot serves a version and collect the bytes nothing else
references; a version's status and identity are read-only (only the actions change
status); artifact files and audit rows cannot be added, changed or deleted here.
"""

from __future__ import annotations

import errno

import pytest
from django.contrib.admin.models import DELETION, LogEntry

from modelmgr.admin import ModelVersionAdmin
from modelmgr.ingest.services import version_verify
from modelmgr.models import ArtifactFile, AuditEvent, ModelVersion, RegisteredModel, Slot
from modelmgr.storage import ContentStore, content_store
from tests.registry.factories import make_model, make_version
from tests.views.conftest import HTMX
from tests.views.support import serving_slot
from tests.views.test_admin_actions import run_action
from tests.views.test_admin_edits import change_form_data

pytestmark = pytest.mark.django_db

VERSIONS = "/admin/modelmgr/modelversion/"
MODELS = "/admin/modelmgr/registeredmodel/"
FILES = "/admin/modelmgr/artifactfile/"
AUDIT = "/admin/modelmgr/auditevent/"


@pytest.fixture
def clf(staff):
    return make_model(staff, "clf", task="classifier")


@pytest.fixture
def v1(clf):
    return make_version(clf, "1", files={"model.onnx": b"weights one", "shared.bin": b"common"})


@pytest.fixture
def v2(clf):
    return make_version(clf, "2", files={"model.onnx": b"weights two", "shared.bin": b"common"})


def blob_exists(sha256: str) -> bool:
    return content_store().exists(sha256)


def shas(version: ModelVersion) -> dict[str, str]:
    return dict(version.files.values_list("path", "sha256"))


def delete_in_admin(client, url: str, obj):
    return client.post(f"{url}{obj.pk}/delete/", {"post": "yes"}, follow=True)


# --- deletes --------------------------------------------------------------------------


def test_deleting_a_served_version_is_refused_and_deletes_nothing(staff_client, v1):
    slot = serving_slot("classifier", v1)
    blobs = shas(v1)
    response = delete_in_admin(staff_client, VERSIONS, v1)
    html = response.content.decode()
    assert "Cannot delete model version" in html
    assert "would require deleting the following protected related objects" in html
    assert f'Slot: <a href="/admin/modelmgr/slot/{slot.pk}/change/">classifier</a>' in html
    assert ModelVersion.objects.filter(pk=v1.pk).exists()
    assert ArtifactFile.objects.filter(version=v1).count() == 2
    assert all(blob_exists(sha) for sha in blobs.values())
    assert not AuditEvent.objects.filter(action="version.delete").exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_a_version_served_after_the_confirmation_is_refused_by_the_service(
    staff_client, v1, monkeypatch, django_capture_on_commit_callbacks
):
    """A switch that commits between the admin's check and the delete: version_delete's
    own guard refuses, the admin shows its error and claims no deletion."""
    original = ModelVersionAdmin.get_deleted_objects

    def check_then_switch(self, objs, request):
        checked = original(self, objs, request)
        serving_slot("classifier", v1)
        return checked

    monkeypatch.setattr(ModelVersionAdmin, "get_deleted_objects", check_then_switch)
    with django_capture_on_commit_callbacks(execute=True):
        html = delete_in_admin(staff_client, VERSIONS, v1).content.decode()
    assert "Not deleted: version clf@1 cannot be deleted: slot(s) classifier serve it" in html
    assert "deleted successfully" not in html
    assert ModelVersion.objects.filter(pk=v1.pk).exists()
    assert all(blob_exists(sha) for sha in shas(v1).values())
    assert not AuditEvent.objects.filter(action="version.delete").exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_deleting_a_version_removes_rows_and_unreferenced_blobs_with_an_audit_row(
    staff_client, v1, v2, django_capture_on_commit_callbacks
):
    blobs = shas(v1)
    with django_capture_on_commit_callbacks(execute=True):
        html = delete_in_admin(staff_client, VERSIONS, v1).content.decode()
    assert "The model version “clf@1” was deleted successfully." in html
    assert not ModelVersion.objects.filter(pk=v1.pk).exists()
    assert not ArtifactFile.objects.filter(version_id=v1.pk).exists()
    assert not blob_exists(blobs["model.onnx"])
    assert blob_exists(blobs["shared.bin"])  # v2 still references it
    event = AuditEvent.objects.get(action="version.delete")
    assert event.target == "stella/clf@1" and event.actor_label == "stella (admin)"
    assert sorted(f["path"] for f in event.before["files"]) == ["model.onnx", "shared.bin"]
    assert LogEntry.objects.get(action_flag=DELETION).object_repr == "clf@1"


def test_bulk_delete_goes_through_the_service_and_refuses_a_batch_with_a_served_version(
    staff_client, v1, v2, django_capture_on_commit_callbacks
):
    slot = serving_slot("classifier", v1)
    data = {"action": "delete_selected", "_selected_action": [v1.pk, v2.pk], "post": "yes"}
    html = staff_client.post(VERSIONS, data, follow=True).content.decode()
    assert "Cannot delete model versions" in html
    assert ModelVersion.objects.filter(model__name="clf").count() == 2

    Slot.objects.filter(pk=slot.pk).update(active_version=None)
    blobs = {**shas(v1), **shas(v2)}
    with django_capture_on_commit_callbacks(execute=True):
        html = staff_client.post(VERSIONS, data, follow=True).content.decode()
    assert "Successfully deleted 2 model versions." in html
    assert not ModelVersion.objects.filter(model__name="clf").exists()
    assert not any(blob_exists(sha) for sha in blobs.values())
    targets = AuditEvent.objects.filter(action="version.delete").values_list("target", flat=True)
    assert sorted(targets) == ["stella/clf@1", "stella/clf@2"]


def test_deleting_a_model_goes_through_model_delete(
    staff_client, clf, v1, v2, django_capture_on_commit_callbacks
):
    serving_slot("classifier", v2)
    html = delete_in_admin(staff_client, MODELS, clf).content.decode()
    assert "Cannot delete registered model" in html
    assert ModelVersion.objects.filter(model=clf).count() == 2

    Slot.objects.update(active_version=None)
    blobs = {**shas(v1), **shas(v2)}
    with django_capture_on_commit_callbacks(execute=True):
        html = delete_in_admin(staff_client, MODELS, clf).content.decode()
    assert "was deleted successfully" in html
    assert not RegisteredModel.objects.filter(pk=clf.pk).exists()
    assert not any(blob_exists(sha) for sha in blobs.values())
    event = AuditEvent.objects.get(action="model.delete")
    assert event.actor_label == "stella (admin)" and event.before["versions"] == ["1", "2"]


# --- version edits -----------------------------------------------------------------


def test_status_and_identity_are_read_only_and_metadata_goes_through_version_update(
    staff_client, clf, v1
):
    make_version(clf, "0.9")
    url = f"{VERSIONS}{v1.pk}/change/"
    page = staff_client.get(url)
    form_fields = set(page.context["adminform"].form.fields)
    for field in ("status", "model", "version", "framework", "error", "source_uri", "unsafe"):
        assert field not in form_fields
    assert {"description", "production_ready", "metadata", "trusted"} <= form_fields
    data = change_form_data(page)
    # Forged fields, as a hand-made POST would send them: ignored.
    data.update(status="archived", error="forged", version="0.9", framework="onnx")
    data.update(description="calibrated", val_accuracy="0.91")
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    v1.refresh_from_db()
    assert (v1.status, v1.error, v1.version, v1.framework) == ("available", "", "1", "")
    assert (v1.description, v1.val_accuracy) == ("calibrated", 0.91)
    event = AuditEvent.objects.get(action="version.update")
    assert event.actor_label == "stella (admin)" and event.target == "stella/clf@1"
    assert event.before["description"] == "" and event.after["description"] == "calibrated"
    assert event.after["status"] == "available"


def test_metadata_the_service_would_refuse_is_an_error_on_the_form(staff_client, v1):
    url = f"{VERSIONS}{v1.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["metadata"] = "[1, 2]"
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "field metadata must be a JSON object" in response.content.decode()
    v1.refresh_from_db()
    assert v1.metadata == {}
    assert not AuditEvent.objects.exists()


def test_models_are_added_and_edited_through_the_services(staff_client, staff):
    response = staff_client.post(
        f"{MODELS}add/",
        {
            "owner": staff.pk,
            "name": "gripper-policy",
            "task": "policy",
            "framework": "onnx",
            "description": "",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    model = RegisteredModel.objects.get(name="gripper-policy")
    created = AuditEvent.objects.get(action="model.create")
    assert created.actor_label == "stella (admin)" and created.target == "stella/gripper-policy"

    url = f"{MODELS}{model.pk}/change/"
    page = staff_client.get(url)
    assert not {"owner", "name"} & set(page.context["adminform"].form.fields)
    data = change_form_data(page)
    data.update(name="renamed", description="grips")
    assert staff_client.post(url, data).status_code == 302
    model.refresh_from_db()
    assert (model.name, model.description) == ("gripper-policy", "grips")
    updated = AuditEvent.objects.get(action="model.update")
    assert updated.after["description"] == "grips"


# --- files and audit rows ----------------------------------------------------------------


def test_artifact_files_cannot_be_added_changed_or_deleted(staff_client, v1):
    artifact = v1.files.get(path="model.onnx")
    assert staff_client.get(f"{FILES}add/").status_code == 403
    page = staff_client.get(f"{FILES}{artifact.pk}/change/")
    assert page.status_code == 200 and not page.context["has_change_permission"]
    response = staff_client.post(f"{FILES}{artifact.pk}/change/", {"path": "evil.onnx"})
    assert response.status_code == 403
    assert staff_client.post(f"{FILES}{artifact.pk}/delete/", {"post": "yes"}).status_code == 403
    assert 'value="delete_selected"' not in staff_client.get(FILES).content.decode()
    assert ArtifactFile.objects.get(pk=artifact.pk).path == "model.onnx"
    # Nor through the version's inline.
    inline = staff_client.get(f"{VERSIONS}{v1.pk}/change/").context["inline_admin_formsets"][0]
    assert not inline.has_add_permission and not inline.has_change_permission


def test_audit_rows_cannot_be_added_changed_or_deleted_in_the_admin(staff_client, v1):
    run_action(staff_client, VERSIONS, "archive_versions", v1)
    event = AuditEvent.objects.get(action="version.archive")
    assert staff_client.get(f"{AUDIT}add/").status_code == 403
    assert staff_client.get(f"{AUDIT}{event.pk}/change/").status_code == 200  # view only
    response = staff_client.post(f"{AUDIT}{event.pk}/change/", {"action": "version.delete"})
    assert response.status_code == 403
    assert staff_client.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    data = {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    staff_client.post(AUDIT, data)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.action == "version.archive"


# --- verify ------------------------------------------------------------------------


def test_verify_action_audits_with_the_admin_label(staff_client, v1):
    html = run_action(staff_client, VERSIONS, "verify_hashes", v1)
    assert "Hashes intact: clf@1 (2 file(s))" in html
    assert AuditEvent.objects.get(action="version.verify").actor_label == "stella (admin)"


def test_verify_on_the_model_page_audits_with_the_page_label(owner_client, owner):
    version = make_version(make_model(owner, "clf", task="classifier"), "1")
    html = owner_client.post("/models/clf/versions/1/verify", **HTMX).content.decode()
    assert "match their sha256" in html
    event = AuditEvent.objects.get(action="version.verify")
    assert event.actor_label == "olivia" and event.target == version.ref


def _unreadable(self, sha256, size=None):
    raise PermissionError(errno.EACCES, "Permission denied", "/srv/artifacts/secret/path")


def test_an_unreadable_blob_is_an_admin_error_not_a_500(staff_client, v1, monkeypatch):
    monkeypatch.setattr(ContentStore, "verify", _unreadable)
    html = run_action(staff_client, VERSIONS, "verify_hashes", v1)
    assert (
        "Not verified, nothing changed: clf@1: could not read its stored files "
        "(Permission denied)" in html
    )
    assert "/srv/artifacts" not in html
    v1.refresh_from_db()
    assert v1.status == "available"
    assert not AuditEvent.objects.filter(action="version.verify").exists()


def test_an_unreadable_blob_is_a_page_error_not_a_500(owner_client, owner, monkeypatch):
    version = make_version(make_model(owner, "clf", task="classifier"), "1")
    monkeypatch.setattr(ContentStore, "verify", _unreadable)
    response = owner_client.post("/models/clf/versions/1/verify", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Could not read the stored files of clf@1 (Permission denied)" in html
    assert "/srv/artifacts" not in html
    version.refresh_from_db()
    assert version.status == "available"


def test_the_service_passes_the_label_it_is_given(staff, v1):
    version_verify(version=v1, actor=staff, actor_label="stella (admin)")
    assert AuditEvent.objects.get().actor_label == "stella (admin)"
