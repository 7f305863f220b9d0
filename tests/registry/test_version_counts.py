"""A model's version_count and latest_version, kept by the database triggers
(modelmgr.registry.counters), through every way versions change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from modelmgr.exceptions import InUse
from modelmgr.models import ModelVersion, RegisteredModel, Slot
from modelmgr.registry import services
from modelmgr.registry.counters import triggers_drop, triggers_ensure, triggers_installed
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db


def summary(model: RegisteredModel) -> tuple[int, str]:
    model.refresh_from_db()
    return model.version_count, model.latest_version


def test_a_new_model_has_no_versions(owner):
    assert summary(make_model(owner)) == (0, "")


def test_creating_versions_counts_them_and_the_newest_available_is_latest(owner):
    model = make_model(owner)
    make_version(model, "1")
    make_version(model, "2")
    make_version(model, "3", status="pending")
    assert summary(model) == (3, "2")


def test_archiving_the_latest_falls_back_to_the_next_newest_and_unarchiving_restores_it(owner):
    model = make_model(owner)
    make_version(model, "1")
    newest = make_version(model, "2")
    services.version_update(version=newest, actor=owner, status="archived")
    assert summary(model) == (2, "1")
    services.version_update(version=newest, actor=owner, status="available")
    assert summary(model) == (2, "2")


def test_deleting_versions_uncounts_them(owner):
    model = make_model(owner)
    first = make_version(model, "1")
    second = make_version(model, "2")
    services.version_delete(version=second, actor=owner)
    assert summary(model) == (1, "1")
    services.version_delete(version=first, actor=owner)
    assert summary(model) == (0, "")


def test_a_bulk_status_update_and_a_bulk_insert_are_counted_too(owner):
    model = make_model(owner)
    ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=str(i), status="available") for i in range(5)
    )
    assert summary(model) == (5, "4")
    ModelVersion.objects.filter(model=model, version__in=["3", "4"]).update(status="error")
    assert summary(model) == (5, "2")
    ModelVersion.objects.filter(model=model).update(status="archived")
    assert summary(model) == (5, "")


def test_a_rolled_back_transaction_leaves_the_counts_as_they_were(owner):
    model = make_model(owner)
    make_version(model, "1")
    with pytest.raises(RuntimeError), transaction.atomic():
        make_version(model, "2")
        assert summary(model) == (2, "2")  # the change is visible inside
        raise RuntimeError("ingest failed")
    assert summary(model) == (1, "1")


def test_a_refused_archive_changes_nothing(owner):
    model = make_model(owner)
    serving = make_version(model, "1")
    Slot.objects.create(name="detector", active_version=serving)
    with pytest.raises(InUse):
        services.version_update(version=serving, actor=owner, status="archived")
    assert summary(model) == (1, "1")


def test_saving_a_model_read_before_versions_arrived_keeps_their_count(owner):
    model = make_model(owner)
    stale = RegisteredModel.objects.get(pk=model.pk)
    make_version(model, "1")
    make_version(model, "2")
    stale.description = "edited in the admin meanwhile"
    stale.save()
    assert summary(model) == (2, "2")
    assert RegisteredModel.objects.get(pk=model.pk).description == "edited in the admin meanwhile"


def test_services_model_update_keeps_the_counts(owner):
    model = make_model(owner)
    make_version(model, "1")
    services.model_update(model=model, actor=owner, description="new words", tags=["a"])
    assert summary(model) == (1, "1")


def test_each_model_counts_only_its_own_versions_and_deleting_a_model_works(owner):
    one, two = make_model(owner, "one"), make_model(owner, "two")
    make_version(one, "1")
    make_version(two, "1")
    make_version(two, "2")
    assert summary(one) == (1, "1") and summary(two) == (2, "2")
    services.model_delete(model=two, actor=owner)
    assert summary(one) == (1, "1")


def test_newest_is_by_created_at_and_ties_go_to_the_higher_id(owner):
    model = make_model(owner)
    first = make_version(model, "a")
    second = make_version(model, "b")
    third = make_version(model, "c")
    now = timezone.now()
    ModelVersion.objects.filter(pk=third.pk).update(created_at=now - timedelta(days=1))
    ModelVersion.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=now)
    assert summary(model) == (3, "b")  # a and b tie on created_at: b has the higher id
    # An import that carries an old created_at does not become the newest.
    ModelVersion.objects.create(model=model, version="old", status="available", created_by=owner)
    ModelVersion.objects.filter(model=model, version="old").update(
        created_at=now - timedelta(days=30)
    )
    assert summary(model) == (4, "b")


def test_missing_triggers_are_put_back_with_a_recount(owner):
    model = make_model(owner)
    make_version(model, "1")
    triggers_drop(connection)
    assert not triggers_installed(connection)
    make_version(model, "2")  # unseen: no trigger
    assert summary(model) == (1, "1")
    assert triggers_ensure("default") is True
    assert triggers_installed(connection)
    assert summary(model) == (2, "2")
    assert triggers_ensure("default") is False  # nothing to do the second time
