"""Edits made in the Django admin: checked by the same services, and audited.

What a slot serves is never edited in a form (only a switch changes it); trusting an
unsafe version, changing a slot's contract or revoking a token leaves an audit row.
"""

from __future__ import annotations

import json

import pytest

from modelmgr.models import ApiToken, AuditEvent, ModelVersion, Slot
from tests.conftest import make_token
from tests.views.support import CONTRACT, ingested, serving_slot

pytestmark = pytest.mark.django_db


def _value(value):
    if value is None or value is False:
        return None
    if value is True:
        return "on"
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)


def change_form_data(response) -> dict:
    """What a browser would post back unchanged from an admin change page."""
    data: dict = {}
    forms = [(response.context["adminform"].form, None)]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        mgmt = formset.management_form
        for name in mgmt.fields:
            data[mgmt.add_prefix(name)] = str(mgmt[name].value())
        forms += [(form, formset) for form in formset.forms]
    for form, _ in forms:
        for name in form.fields:
            value = _value(form[name].value())  # already prepared for the widget
            if value is not None:
                data[form.add_prefix(name)] = value
    return data


@pytest.fixture
def v1(staff, model_files, tmp_path):
    return ingested(staff, model_files, tmp_path, version="1")


def test_trusting_a_version_in_the_admin_is_audited(staff_client, v1):
    url = f"/admin/modelmgr/modelversion/{v1.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["trusted"] = "on"
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ModelVersion.objects.get(pk=v1.pk).trusted is True
    # Saved by registry.services.version_update, like the API's PATCH.
    event = AuditEvent.objects.get(action="version.update")
    assert event.target == "stella/clf@1"
    assert event.actor_label == "stella (admin)"
    assert event.before["trusted"] is False and event.after["trusted"] is True


def test_an_unchanged_save_writes_no_audit_row(staff_client, v1):
    url = f"/admin/modelmgr/modelversion/{v1.pk}/change/"
    assert staff_client.post(url, change_form_data(staff_client.get(url))).status_code == 302
    assert not AuditEvent.objects.filter(action="version.update").exists()


def test_what_a_slot_serves_cannot_be_edited_in_its_form(
    staff_client, staff, v1, tmp_path, model_files
):
    other = ingested(staff, model_files, tmp_path, version="2", seed=3)
    slot = serving_slot("classifier", v1)
    url = f"/admin/modelmgr/slot/{slot.pk}/change/"
    page = staff_client.get(url)
    assert "active_version" not in page.context["adminform"].form.fields
    data = change_form_data(page)
    data["active_version"] = str(other.pk)  # a forged field is ignored
    data["description"] = "the arm camera's detector"
    assert staff_client.post(url, data).status_code == 302
    slot.refresh_from_db()
    assert slot.active_version_id == v1.pk
    assert slot.description == "the arm camera's detector"
    event = AuditEvent.objects.get(action="slot.update")
    assert event.after["description"] == "the arm camera's detector"


def test_a_contract_the_served_version_would_not_fit_is_refused_on_the_form(staff_client, v1):
    slot = serving_slot("classifier", v1)
    url = f"/admin/modelmgr/slot/{slot.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["contract"] = json.dumps(
        {"inputs": [{"name": "x", "shape": ["batch", 7], "dtype": "float32"}]}
    )
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "serves clf@1, which would not fit the change" in response.content.decode()
    slot.refresh_from_db()
    assert slot.contract == CONTRACT
    assert not AuditEvent.objects.filter(action="slot.update").exists()


def test_slots_added_and_deleted_in_the_admin_go_through_the_services(staff_client, v1):
    response = staff_client.post(
        "/admin/modelmgr/slot/add/",
        {"name": "gripper", "task": "policy", "description": "", "contract": "{}"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Slot.objects.get(name="gripper")
    assert AuditEvent.objects.filter(action="slot.create", target="gripper").exists()

    serving = serving_slot("classifier", v1)
    assert staff_client.get(f"/admin/modelmgr/slot/{serving.pk}/delete/").status_code == 403
    response = staff_client.post(f"/admin/modelmgr/slot/{created.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Slot.objects.filter(name="gripper").exists()
    assert AuditEvent.objects.filter(action="slot.delete", target="gripper").exists()
    assert Slot.objects.filter(pk=serving.pk).exists()


def test_tokens_are_revoked_not_made_in_the_admin(staff_client, staff):
    make_token(staff, name="robot")
    token = ApiToken.objects.get(name="robot")
    assert staff_client.get("/admin/modelmgr/apitoken/add/").status_code == 403
    assert staff_client.get("/admin/modelmgr/modelversion/add/").status_code == 403
    url = f"/admin/modelmgr/apitoken/{token.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["revoked"] = "on"
    assert staff_client.post(url, data).status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked is True
    event = AuditEvent.objects.get(action="token.admin_change")
    assert event.before == {"revoked": False} and event.after == {"revoked": True}


def test_pinning_a_version_in_the_admin_is_audited_and_listed(staff_client, v1, closed_port_worker):
    url = f"/admin/modelmgr/modelversion/{v1.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["pinned"] = "on"
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ModelVersion.objects.get(pk=v1.pk).pinned is True
    # Saved by registry.services.version_update, like the API's PATCH.
    event = AuditEvent.objects.get(action="version.pin")
    assert event.actor_label == "stella (admin)"
    assert event.before["pinned"] is False and event.after["pinned"] is True
    listing = staff_client.get("/admin/modelmgr/modelversion/").content.decode()
    assert "column-pinned" in listing
    assert staff_client.get("/admin/modelmgr/modelversion/?pinned__exact=1").status_code == 200


def test_pinning_an_archived_version_is_refused_on_the_form(staff_client, v1):
    ModelVersion.objects.filter(pk=v1.pk).update(status="archived")
    url = f"/admin/modelmgr/modelversion/{v1.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["pinned"] = "on"
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "clf@1 cannot be pinned: its status is archived" in response.content.decode()
    assert ModelVersion.objects.get(pk=v1.pk).pinned is False
    assert not AuditEvent.objects.filter(action="version.pin").exists()


def test_an_unsafe_version_is_pinned_in_the_admin_only_with_trust(staff_client, v1):
    ModelVersion.objects.filter(pk=v1.pk).update(unsafe=True)
    url = f"/admin/modelmgr/modelversion/{v1.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["pinned"] = "on"
    response = staff_client.post(url, data)
    assert "an administrator has not marked trusted" in response.content.decode()
    data["trusted"] = "on"
    assert staff_client.post(url, data).status_code == 302
    stored = ModelVersion.objects.get(pk=v1.pk)
    assert stored.trusted is True and stored.pinned is True


def test_the_slot_list_and_form_show_canary_and_shadow_read_only(staff_client, v1):
    """They change only by a switch (modelmgr.deploy.canary): shown, never edited here."""
    slot = serving_slot("classifier", v1)
    listing = staff_client.get("/admin/modelmgr/slot/").content.decode()
    assert "clf@1" in listing
    assert "column-canary_version" in listing and "column-shadow_version" in listing
    assert '<option value="slot_promote">' in listing and '<option value="slot_abort">' in listing
    change = staff_client.get(f"/admin/modelmgr/slot/{slot.pk}/change/").content.decode()
    assert "field-canary_version" in change and 'name="canary_version"' not in change
    assert "field-shadow_version" in change and 'name="shadow_version"' not in change


def test_batching_is_set_on_the_slot_form_checked_and_audited(staff_client, v1):
    slot = serving_slot("classifier", v1)
    url = f"/admin/modelmgr/slot/{slot.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data.update(max_batch_size="8", max_queue_delay_us="2000", preferred_batch_sizes="[4]")
    assert staff_client.post(url, data).status_code == 302
    slot.refresh_from_db()
    assert (slot.max_batch_size, slot.max_queue_delay_us, slot.preferred_batch_sizes) == (
        8,
        2000,
        [4],
    )
    assert AuditEvent.objects.get(action="slot.batching").after["max_batch_size"] == 8
    data.update(max_batch_size="8", preferred_batch_sizes="[16]")
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "each preferred batch size must be an integer from 2 to max_batch_size" in (
        response.content.decode()
    )


def test_batching_a_slot_without_a_dynamic_batch_dimension_is_refused_on_the_form(staff_client, v1):
    v1.signature = {
        "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32"}],
    }
    v1.save(update_fields=["signature"])
    slot = serving_slot("classifier", v1)
    url = f"/admin/modelmgr/slot/{slot.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["max_batch_size"] = "8"
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "input &#x27;x&#x27; has a fixed first dimension (1)" in response.content.decode()
    slot.refresh_from_db()
    assert slot.max_batch_size == 0


def test_llm_limits_are_set_on_the_slot_form_checked_and_audited(staff_client, v1):
    slot = serving_slot("classifier", v1)
    url = f"/admin/modelmgr/slot/{slot.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data.update(llm_num_parallel="2", llm_max_queue="0")
    assert staff_client.post(url, data).status_code == 302
    slot.refresh_from_db()
    assert (slot.llm_num_parallel, slot.llm_max_queue) == (2, 0)
    event = AuditEvent.objects.get(action="slot.llm_limits")
    assert event.after == {"num_parallel": 2, "max_queue": 0}
    data.update(llm_num_parallel="100", llm_max_queue="")
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "num_parallel must be an integer from 0 to 64" in response.content.decode()
    slot.refresh_from_db()
    assert (slot.llm_num_parallel, slot.llm_max_queue) == (2, 0)


def test_catalog_fields_are_edited_in_the_admin_through_the_service(staff_client, v1):
    url = f"/admin/modelmgr/modelversion/{v1.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data.update({"purpose": "quality", "family": "mlp", "parameter_size": "7B"})
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = ModelVersion.objects.get(pk=v1.pk)
    assert saved.purpose == "quality" and saved.family == "mlp"
    assert saved.parameter_count  # the weights' count, or 7B when unknown
    event = AuditEvent.objects.get(action="version.update")
    assert event.after["purpose"] == "quality"
    data["parameter_size"] = "seven"
    refused = staff_client.post(url, data)
    assert refused.status_code == 200 and "parameter_size" in refused.content.decode()


def test_a_keep_alive_set_in_the_admin_is_audited(staff_client, v1):
    url = f"/admin/modelmgr/modelversion/{v1.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data["keep_alive_s"] = "90"
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ModelVersion.objects.get(pk=v1.pk).keep_alive_s == 90.0
    event = AuditEvent.objects.get(action="version.update")
    assert event.before["keep_alive_s"] is None and event.after["keep_alive_s"] == 90.0


def test_a_quality_gate_and_production_flag_are_set_on_the_slot_form_and_audited(staff_client, v1):
    slot = serving_slot("classifier", v1)
    url = f"/admin/modelmgr/slot/{slot.pk}/change/"
    data = change_form_data(staff_client.get(url))
    data.update(quality_gate='{"val_accuracy": ">=0.9"}', production="on")
    assert staff_client.post(url, data).status_code == 302
    slot.refresh_from_db()
    assert (slot.quality_gate, slot.production) == ({"val_accuracy": ">= 0.9"}, True)
    event = AuditEvent.objects.get(action="slot.gate")
    assert event.before == {"quality_gate": {}, "production": False}
    assert event.after == {"quality_gate": {"val_accuracy": ">= 0.9"}, "production": True}
    data.update(quality_gate='{"val_accuracy": "about 0.9"}')
    response = staff_client.post(url, data)
    assert response.status_code == 200
    assert "expected &#x27;&lt;op&gt; &lt;number&gt;&#x27;" in response.content.decode()
    slot.refresh_from_db()
    assert slot.quality_gate == {"val_accuracy": ">= 0.9"}
    assert AuditEvent.objects.filter(action="slot.gate").count() == 1


def test_usage_rows_are_looked_at_but_never_deleted_in_the_admin(staff_client, v1):
    """A minute deleted in the admin would stay counted in the version's all-time total."""
    from django.utils import timezone

    from modelmgr.models import UsageBucket, UsageTotal
    from tests.deploy.support import bucket_row

    bucket = bucket_row(v1, "clf", timezone.now(), [1.0, 2.0])
    total = UsageTotal.objects.get(version=v1)
    for name, row in (("usagebucket", bucket), ("usagetotal", total)):
        listing = staff_client.get(f"/admin/modelmgr/{name}/")
        assert listing.status_code == 200 and "clf" in listing.content.decode()
        assert staff_client.get(f"/admin/modelmgr/{name}/{row.pk}/change/").status_code == 200
        deleted = staff_client.post(f"/admin/modelmgr/{name}/{row.pk}/delete/", {"post": "yes"})
        assert deleted.status_code == 403
    assert UsageBucket.objects.filter(pk=bucket.pk).exists()
    assert UsageTotal.objects.get(pk=total.pk).count == 2
