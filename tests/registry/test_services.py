from __future__ import annotations

import pytest

from modelmgr.exceptions import InUse, ModelmgrError, VersionConflict
from modelmgr.models import (
    ArtifactFile,
    AuditEvent,
    ModelVersion,
    RegisteredModel,
    Slot,
    Tag,
)
from modelmgr.registry.services import (
    model_create,
    model_delete,
    model_tags_set,
    model_update,
    version_delete,
    version_update,
)
from modelmgr.registry.validation import InvalidInput
from modelmgr.storage import content_store
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db


def blob_exists(sha256: str) -> bool:
    return content_store().exists(sha256)


def only_audit(action: str) -> AuditEvent:
    (event,) = AuditEvent.objects.filter(action=action)
    return event


def test_model_create_writes_row_tags_and_audit(owner):
    model = model_create(owner=owner, name="yolo-s", task="detector", tags=["GPU", "vision"])
    assert model.owner == owner and model.task == "detector"
    assert sorted(model.tags.values_list("name", flat=True)) == ["gpu", "vision"]
    event = only_audit("model.create")
    assert event.actor == owner and event.target == "olivia/yolo-s"
    assert event.before is None
    assert event.after["tags"] == ["gpu", "vision"] and event.after["task"] == "detector"


def test_duplicate_model_name_for_same_owner_is_a_conflict_and_stores_nothing(owner):
    model_create(owner=owner, name="yolo-s")
    with pytest.raises(VersionConflict, match="already has a model named 'yolo-s'"):
        model_create(owner=owner, name="yolo-s")
    assert RegisteredModel.objects.count() == 1
    assert AuditEvent.objects.filter(action="model.create").count() == 1


def test_same_model_name_for_different_owners_is_fine(owner, other_user):
    model_create(owner=owner, name="yolo-s")
    model_create(owner=other_user, name="yolo-s")
    assert RegisteredModel.objects.filter(name="yolo-s").count() == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "has space"}, "must be a slug"),
        ({"name": "x" * 101}, "must be a slug"),
        ({"name": "ok", "task": "juggler"}, "task 'juggler' is not one of"),
        ({"name": "ok", "framework": "caffe"}, "framework 'caffe' is not one of"),
        ({"name": "ok", "tags": ["no spaces allowed"]}, "tag 'no spaces allowed'"),
    ],
)
def test_invalid_model_input_is_refused_and_leaves_nothing(owner, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        model_create(owner=owner, **kwargs)
    assert not RegisteredModel.objects.exists()
    assert not Tag.objects.exists()
    assert not AuditEvent.objects.exists()


def test_model_update_records_before_and_after(owner):
    model = make_model(owner, "det", task="detector", tags=("old",))
    model_update(
        model=model, actor=owner, task="pose", description="new words", tags=["fresh", "old"]
    )
    model.refresh_from_db()
    assert model.task == "pose" and model.description == "new words"
    event = only_audit("model.update")
    assert event.before["task"] == "detector" and event.before["tags"] == ["old"]
    assert event.after["task"] == "pose" and event.after["tags"] == ["fresh", "old"]
    assert event.after["description"] == "new words"


def test_model_update_with_bad_task_changes_nothing(owner):
    model = make_model(owner, "det", task="detector")
    with pytest.raises(InvalidInput):
        model_update(model=model, actor=owner, task="juggler", description="changed")
    model.refresh_from_db()
    assert model.description == "" and not AuditEvent.objects.exists()


def test_tags_set_creates_missing_tags_and_replaces_the_set(owner):
    model = make_model(owner, "det", tags=("a", "b"))
    model_tags_set(model=model, actor=owner, names=["b", "c"])
    assert sorted(model.tags.values_list("name", flat=True)) == ["b", "c"]
    assert Tag.objects.filter(name="c").exists()
    model_tags_set(model=model, actor=owner, names=[])
    assert not model.tags.exists()
    assert AuditEvent.objects.filter(action="model.update").count() == 2


@pytest.mark.parametrize("role", ["active_version", "canary_version"])
def test_model_delete_is_refused_while_a_slot_serves_one_of_its_versions(owner, role):
    model = make_model(owner, "det")
    make_version(model, "1")
    served = make_version(model, "2")
    Slot.objects.create(name="front-camera", **{role: served})
    with pytest.raises(InUse, match="front-camera"):
        model_delete(model=model, actor=owner)
    assert ModelVersion.objects.filter(model=model).count() == 2
    assert not AuditEvent.objects.filter(action="model.delete").exists()


def test_model_delete_removes_rows_and_unshared_blobs_after_commit(
    owner, django_capture_on_commit_callbacks
):
    model = make_model(owner, "det")
    version = make_version(model, "1", files={"own.bin": b"only here", "shared.bin": b"common"})
    other = make_version(make_model(owner, "keeper"), "1", files={"w.bin": b"common"})
    own_sha = version.files.get(path="own.bin").sha256
    shared_sha = other.files.get().sha256
    with django_capture_on_commit_callbacks(execute=True):
        model_delete(model=model, actor=owner)
    assert not RegisteredModel.objects.filter(pk=model.pk).exists()
    assert not ArtifactFile.objects.filter(version__model_id=model.pk).exists()
    assert not blob_exists(own_sha)
    assert blob_exists(shared_sha)
    event = only_audit("model.delete")
    assert event.before["name"] == "det" and event.before["versions"] == ["1"]
    assert event.after is None


def test_blobs_survive_until_the_delete_commits(owner, django_capture_on_commit_callbacks):
    version = make_version(make_model(owner, "det"), "1")
    sha = version.files.get().sha256
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        version_delete(version=version, actor=owner)
        assert blob_exists(sha)
    assert blob_exists(sha)  # not committed: nothing collected yet
    for callback in callbacks:
        callback()
    assert not blob_exists(sha)


def test_version_update_edits_metadata_with_audit(owner):
    version = make_version(make_model(owner, "det"), "1", val_accuracy=0.5)
    version_update(
        version=version,
        actor=owner,
        fields={
            "val_accuracy": 0.91,
            "dependencies": ["numpy>=2"],
            "min_vram_mb": 2048,
            "production_ready": True,
            "metadata": {"dataset": "coco"},
        },
    )
    version.refresh_from_db()
    assert version.val_accuracy == 0.91 and version.production_ready
    assert version.metadata == {"dataset": "coco"} and version.min_vram_mb == 2048
    event = only_audit("version.update")
    assert event.target == "olivia/det@1"
    assert event.before["val_accuracy"] == 0.5 and event.after["val_accuracy"] == 0.91
    assert event.before["metadata"] == {} and event.after["metadata"] == {"dataset": "coco"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size_bytes": 1}, "unknown version field"),
        ({"min_vram_mb": -1}, "non-negative integer"),
        ({"val_accuracy": "high"}, "must be a number"),
        ({"val_accuracy": float("nan")}, "finite number"),
        ({"metadata": [1, 2]}, "JSON object"),
        ({"dependencies": "numpy"}, "list of strings"),
        ({"production_ready": "yes"}, "true or false"),
    ],
)
def test_version_update_refuses_bad_fields_and_changes_nothing(owner, fields, message):
    version = make_version(make_model(owner, "det"), "1", val_accuracy=0.5)
    with pytest.raises(ModelmgrError, match=message) as caught:
        version_update(version=version, actor=owner, fields=fields)
    assert caught.value.status == 422
    version.refresh_from_db()
    assert version.val_accuracy == 0.5 and not AuditEvent.objects.exists()


def test_version_update_with_null_clears_a_field(owner):
    version = make_version(
        make_model(owner, "det"), "1", val_accuracy=0.5, metadata={"a": 1}, production_ready=True
    )
    version_update(
        version=version,
        actor=owner,
        fields={"val_accuracy": None, "metadata": None, "production_ready": None},
    )
    version.refresh_from_db()
    assert version.val_accuracy is None and version.metadata == {}
    assert version.production_ready is False


def test_archive_and_unarchive_are_audited(owner):
    version = make_version(make_model(owner, "det"), "1")
    version_update(version=version, actor=owner, status="archived")
    version.refresh_from_db()
    assert version.status == "archived"
    version_update(version=version, actor=owner, status="available")
    version.refresh_from_db()
    assert version.status == "available"
    archive, unarchive = only_audit("version.archive"), only_audit("version.unarchive")
    assert archive.before["status"] == "available" and archive.after["status"] == "archived"
    assert unarchive.before["status"] == "archived" and unarchive.after["status"] == "available"


def test_unarchiving_a_failed_version_keeps_it_failed(owner):
    version = make_version(make_model(owner, "det"), "1", status="error", error="bad opset")
    version_update(version=version, actor=owner, status="archived")
    version_update(version=version, actor=owner, status="available")
    version.refresh_from_db()
    assert version.status == "error"


def test_archiving_a_served_version_is_refused(owner):
    version = make_version(make_model(owner, "det"), "1")
    Slot.objects.create(name="detector", active_version=version)
    with pytest.raises(InUse, match="slot\\(s\\) detector"):
        version_update(version=version, actor=owner, status="archived")
    version.refresh_from_db()
    assert version.status == "available" and not AuditEvent.objects.exists()


def test_pending_version_cannot_be_archived(owner):
    version = make_version(make_model(owner, "det"), "1", status="pending")
    with pytest.raises(VersionConflict, match="is pending"):
        version_update(version=version, actor=owner, status="archived")


@pytest.mark.parametrize("role", ["active_version", "canary_version"])
def test_version_delete_is_refused_while_a_slot_serves_it(owner, role):
    version = make_version(make_model(owner, "det"), "1")
    Slot.objects.create(name="detector", **{role: version})
    with pytest.raises(InUse, match="detector"):
        version_delete(version=version, actor=owner)
    assert ModelVersion.objects.filter(pk=version.pk).exists()
    assert blob_exists(version.files.get().sha256)


def test_version_delete_keeps_blobs_other_versions_share(owner, django_capture_on_commit_callbacks):
    model = make_model(owner, "det")
    one = make_version(model, "1", files={"w.bin": b"same weights", "cfg": b"one"})
    two = make_version(model, "2", files={"w.bin": b"same weights", "cfg": b"two"})
    own_cfg = one.files.get(path="cfg").sha256
    with django_capture_on_commit_callbacks(execute=True):
        version_delete(version=one, actor=owner)
    assert blob_exists(two.files.get(path="w.bin").sha256)
    assert not blob_exists(own_cfg)
    event = only_audit("version.delete")
    assert {f["path"] for f in event.before["files"]} == {"w.bin", "cfg"}


def test_version_delete_removes_its_only_blob(owner, django_capture_on_commit_callbacks):
    version = make_version(make_model(owner, "det"), "1", files={"only.bin": b"unique"})
    sha = version.files.get().sha256
    with django_capture_on_commit_callbacks(execute=True):
        version_delete(version=version, actor=owner)
    assert not blob_exists(sha)
    assert not ModelVersion.objects.filter(pk=version.pk).exists()


def test_previous_version_pointer_does_not_block_delete(owner):
    version = make_version(make_model(owner, "det"), "1")
    slot = Slot.objects.create(name="detector", previous_version=version)
    version_delete(version=version, actor=owner)
    slot.refresh_from_db()
    assert slot.previous_version is None
