"""Canary and shadow from the admin's actions and the settings page's card, through the
one service (modelmgr.deploy.canary), against a real worker."""

from __future__ import annotations

import pytest

from modelmgr.deploy.canary import canary_set, shadow_set
from modelmgr.models import AuditEvent, Slot
from tests.deploy.live import live_worker, served_by
from tests.views.support import ingested, serving_slot
from tests.views.test_admin_actions import SLOTS, run_action

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def versions(staff, model_files, tmp_path):
    v1 = ingested(staff, model_files, tmp_path, version="1")
    v2 = ingested(staff, model_files, tmp_path, version="2", seed=1)
    serving_slot("classifier", v1)
    return v1, v2


def test_admin_promotes_a_canary_and_refuses_where_there_is_none(
    staff_client, staff, api, settings, versions
):
    v1, v2 = versions
    serving_slot("empty-handed", v1)
    with live_worker(settings):
        canary_set(slot="classifier", ref="clf@2", share=0.3, actor=staff)
        slots = Slot.objects.order_by("name")
        html = run_action(staff_client, SLOTS, "slot_promote", *slots)
        assert "Promoted: classifier serves clf@2" in html
        assert "Not promoted: empty-handed: the slot has no canary to promote" in html
        assert served_by(api, "classifier") == "clf@2"
    slot = Slot.objects.get(name="classifier")
    assert (slot.active_version, slot.previous_version, slot.canary_version) == (v2, v1, None)
    assert AuditEvent.objects.get(action="slot.promote").actor_label == "stella (admin)"


def test_admin_aborts_canary_and_shadow(staff_client, staff, api, settings, versions):
    with live_worker(settings):
        canary_set(slot="classifier", ref="clf@2", share=1.0, actor=staff)
        shadow_set(slot="classifier", ref="clf@2", actor=staff)
        assert served_by(api, "classifier") == "clf@2"
        html = run_action(staff_client, SLOTS, "slot_abort", Slot.objects.get())
        assert "Canary and shadow removed: classifier serves clf@1" in html
        assert served_by(api, "classifier") == "clf@1"
    slot = Slot.objects.get()
    assert slot.canary_version is None and slot.shadow_version is None


def test_the_card_sets_a_shadow_and_shows_its_arm(staff_client, settings, versions):
    with live_worker(settings):
        answer = staff_client.post(
            "/settings/classifier/canary/shadow",
            {"shadow-version-classifier": "stella/clf@2"},
            HTTP_HX_REQUEST="true",
        )
        html = answer.content.decode()
        assert "Shadow on classifier: clf@2 gets a copy of every request" in html
        assert 'id="slots" class="grid slots" data-reconnect-get="/settings" hx-swap-oob' in html
        arms = staff_client.get("/settings/classifier/arms").content.decode()
        status = staff_client.get("/status").content.decode()
    assert "+ shadow <code>clf@2</code>" in status  # the worker's routing table
    assert '<tr data-arm="shadow">' in arms and "<code>clf@2</code>" in arms
    assert Slot.objects.get().shadow_version == versions[1]


def test_the_card_names_a_bad_share(staff_client, settings, versions):
    answer = staff_client.post(
        "/settings/classifier/canary/canary",
        {"canary-version-classifier": "stella/clf@2", "canary-share-classifier": "150"},
        HTTP_HX_REQUEST="true",
    )
    assert "share must be from 0 to 1, got 1.5" in answer.content.decode()
    assert Slot.objects.get().canary_version is None
