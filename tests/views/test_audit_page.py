"""/audit: every change, filtered by actor, action, model, slot and outcome, paginated."""

from __future__ import annotations

import re

import pytest
from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.models import AuditEvent, Slot
from modelmgr.registry.services import model_create, model_update, version_update
from tests.registry.factories import make_version
from tests.views.conftest import HTMX


def rows(response) -> list[str]:
    """(action, target) per row, as the table shows them."""
    html = response.content.decode()
    return re.findall(
        r"<td><code>([\w.]+)</code></td>\s*<td><span class=\"muted small\">"
        r"\w+</span> ([^<]+)</td>",
        html,
    )


def record(actor, action, target_type, target, **kwargs):
    with transaction.atomic():
        audit_record(actor=actor, action=action, target_type=target_type, target=target, **kwargs)


@pytest.fixture
def history(owner, other_user, staff):
    yolo = model_create(owner=owner, name="yolo", task="detector")
    model_update(model=yolo, actor=owner, description="better")
    version = make_version(yolo, "1")
    version_update(version=version, actor=owner, fields={"production_ready": True})
    model_create(owner=other_user, name="oscars", task="pose")
    Slot.objects.create(name="detector", task="detector")
    record(staff, "slot.switch", "slot", "detector", after={"active": "olivia/yolo@1"})
    record(staff, "slot.switch", "slot", "detector", outcome="error", error="hash mismatch")


@pytest.mark.django_db
def test_owner_sees_their_changes_and_the_slots_but_not_other_users_models(owner_client, history):
    found = rows(owner_client.get("/audit"))
    targets = {target for _, target in found}
    assert "olivia/yolo" in targets and "detector" in targets
    assert not any("oscars" in target for target in targets)


@pytest.mark.django_db
def test_staff_see_everything(staff_client, history):
    assert len(rows(staff_client.get("/audit"))) == AuditEvent.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, expected",
    [
        ({"actor": "oscar"}, [("model.create", "oscar/oscars")]),
        ({"action": "model.update"}, [("model.update", "olivia/yolo")]),
        (
            {"model": "yolo"},
            [
                ("version.update", "olivia/yolo@1"),
                ("model.update", "olivia/yolo"),
                ("model.create", "olivia/yolo"),
            ],
        ),
        ({"slot": "detector", "outcome": "error"}, [("slot.switch", "detector")]),
        ({"slot": "detector"}, [("slot.switch", "detector"), ("slot.switch", "detector")]),
    ],
)
def test_filters(staff_client, history, query, expected):
    assert rows(staff_client.get("/audit", query)) == expected


@pytest.mark.django_db
def test_failed_changes_show_their_error_in_red(staff_client, history):
    html = staff_client.get("/audit", {"outcome": "error"}).content.decode()
    assert '<span class="badge err">error</span>' in html and "hash mismatch" in html


@pytest.mark.django_db
def test_htmx_filtering_returns_the_results_partial(staff_client, history):
    html = staff_client.get("/audit", {"actor": "stella"}, **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="audit-results">')
    # A filtered table is not live: new rows would ignore its filters.
    assert 'id="audit-rows"' in html and 'id="audit-rows-live"' not in html


@pytest.mark.django_db
def test_unfiltered_first_page_takes_live_rows(staff_client, history):
    assert 'id="audit-rows-live"' in staff_client.get("/audit").content.decode()


@pytest.mark.django_db
def test_pages_of_fifty_forwards_and_back(staff_client, staff):
    for index in range(60):
        record(staff, "demo.event", "demo", f"t-{index:02d}")
    first = staff_client.get("/audit")
    assert [t for _, t in rows(first)] == [f"t-{i:02d}" for i in range(59, 9, -1)]
    next_url = re.search(r'id="next-page" href="([^"]+)"', first.content.decode())[1]
    second = staff_client.get(next_url.replace("&amp;", "&"))
    assert [t for _, t in rows(second)] == [f"t-{i:02d}" for i in range(9, -1, -1)]
    assert "← Newer" in second.content.decode()
