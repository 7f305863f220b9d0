"""Slot services: create, update, delete; audited; staff only; contracts guarded."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from modelmgr.deploy.slots import slot_create, slot_delete, slot_update
from modelmgr.exceptions import Forbidden, InUse, ModelmgrError, NotFound, VersionConflict
from modelmgr.models import AuditEvent, Slot
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db


def test_staff_creates_a_slot_with_an_audit_row(staff):
    slot = slot_create(
        name="detector",
        task="detector",
        description="front camera",
        contract={"inputs": [{"name": "image"}]},
        actor=staff,
    )
    assert slot.contract == {"inputs": [{"name": "image", "shape": None, "dtype": None}]}
    event = AuditEvent.objects.get(action="slot.create")
    assert (event.target, event.actor, event.after["task"]) == ("detector", staff, "detector")


def test_user_with_add_permission_may_create_slots(owner):
    owner.user_permissions.add(Permission.objects.get(codename="add_slot"))
    owner = type(owner).objects.get(pk=owner.pk)  # drop the cached permissions
    assert slot_create(name="s", actor=owner).name == "s"


def test_ordinary_user_may_not_create_slots(owner):
    with pytest.raises(Forbidden):
        slot_create(name="detector", actor=owner)
    assert not Slot.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": "has space"}, "may hold only letters"),
        ({"name": ""}, "1-64 characters"),
        ({"name": "s", "task": "juggler"}, "task 'juggler' is not one of"),
        ({"name": "s", "contract": {"inputs": "x"}}, "contract.inputs must be a list"),
    ],
)
def test_bad_slot_fields_are_refused_and_leave_nothing(staff, fields, named):
    with pytest.raises(ModelmgrError) as caught:
        slot_create(actor=staff, **fields)
    assert caught.value.status == 422 and named in caught.value.detail
    assert not Slot.objects.exists() and not AuditEvent.objects.exists()


def test_duplicate_slot_name_is_a_conflict(staff):
    slot_create(name="s", actor=staff)
    with pytest.raises(VersionConflict):
        slot_create(name="s", actor=staff)
    assert AuditEvent.objects.filter(action="slot.create").count() == 1


def test_update_changes_fields_and_audits_before_and_after(staff):
    slot_create(name="s", actor=staff)
    slot = slot_update(slot_name="s", actor=staff, description="new", task="policy")
    assert (slot.description, slot.task) == ("new", "policy")
    event = AuditEvent.objects.get(action="slot.update")
    assert event.before["task"] == "other" and event.after["task"] == "policy"


def test_update_without_change_writes_no_audit_row(staff):
    slot_create(name="s", actor=staff)
    slot_update(slot_name="s", actor=staff, description="")
    assert not AuditEvent.objects.filter(action="slot.update").exists()


def test_contract_the_active_version_breaks_is_refused(staff, owner):
    version = version_of(owner)
    Slot.objects.create(name="s", task="classifier", active_version=version)
    with pytest.raises(VersionConflict) as caught:
        slot_update(
            slot_name="s", actor=staff, contract={"inputs": [{"name": "x", "shape": [None, 3]}]}
        )
    assert "serves clf@1" in caught.value.detail and "[?, 3]" in caught.value.detail
    assert Slot.objects.get(name="s").contract == {}
    assert not AuditEvent.objects.exists()


def test_task_the_active_version_breaks_is_refused(staff, owner):
    Slot.objects.create(name="s", task="classifier", active_version=version_of(owner))
    with pytest.raises(VersionConflict):
        slot_update(slot_name="s", actor=staff, task="detector")
    assert Slot.objects.get(name="s").task == "classifier"


def test_update_of_a_missing_slot_is_404(staff):
    with pytest.raises(NotFound):
        slot_update(slot_name="nope", actor=staff, description="x")


def test_idle_slot_is_deleted_with_an_audit_row(staff):
    slot_create(name="s", actor=staff)
    slot_delete(slot_name="s", actor=staff)
    assert not Slot.objects.exists()
    assert AuditEvent.objects.get(action="slot.delete").before["name"] == "s"


def test_serving_slot_is_not_deleted(staff, owner):
    Slot.objects.create(name="s", task="classifier", active_version=version_of(owner))
    with pytest.raises(InUse) as caught:
        slot_delete(slot_name="s", actor=staff)
    assert "serves clf@1" in caught.value.detail
    assert Slot.objects.filter(name="s").exists()


def test_ordinary_user_may_not_change_or_delete_slots(owner):
    Slot.objects.create(name="s")
    with pytest.raises(Forbidden):
        slot_update(slot_name="s", actor=owner, description="x")
    with pytest.raises(Forbidden):
        slot_delete(slot_name="s", actor=owner)
