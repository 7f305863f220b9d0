"""The audit trail is append-only: rows are added inside a change's transaction, and no
code path (instance, queryset, bulk) changes or deletes one once written."""

from __future__ import annotations

import pytest
from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(owner) -> AuditEvent:
    with transaction.atomic():
        return audit_record(
            actor=owner, action="model.create", target_type="model", target="olivia/det"
        )


def test_a_new_row_is_written_with_the_actor_label(event):
    assert AuditEvent.objects.get(pk=event.pk).actor_label == "olivia"


def test_a_stored_row_cannot_be_saved_again(event):
    event.action = "model.delete"
    with pytest.raises(PermissionError, match="append-only"):
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "model.create"


def test_a_stored_row_cannot_be_deleted(event):
    with pytest.raises(PermissionError, match="append-only"):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_querysets_refuse_update_bulk_update_and_delete(event):
    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(target="olivia/other")
    event.target = "olivia/other"
    # bulk_update opens an atomic block without a savepoint: give it one to unwind to.
    with pytest.raises(PermissionError, match="append-only"), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["target"])
    with pytest.raises(PermissionError, match="append-only"):
        AuditEvent.objects.all().delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.target == "olivia/det"


def test_deleting_the_actor_keeps_the_row_and_its_label(event, owner):
    owner.delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor is None and stored.actor_label == "olivia"
