"""/settings: slot cards, switching one or several slots in the background, rollback."""

from __future__ import annotations

import re

import pytest

from modelmgr.models import AuditEvent, Slot
from modelmgr.views.switching import switch_run_latest, switch_runs_wait
from tests.views.conftest import HTMX
from tests.views.support import ingested, serving_slot
from tests.workerproc import start_worker


def options(html: str, slot: str) -> list[str]:
    select = re.search(
        rf'<select id="select-{slot}" name="slot-{slot}"[^>]*>(.*?)</select>', html, re.S
    )[1]
    return re.findall(r'<option value="([^"]*)"', select)


def finished_run_html(client) -> str:
    """Wait for the switch thread the page started, then poll its outcome as htmx does."""
    switch_runs_wait()
    run = switch_run_latest()
    assert run is not None and not run.running
    return client.get(f"/settings/runs/{run.id}", **HTMX).content.decode()


@pytest.fixture
def two_versions(owner, model_files, tmp_path):
    v1 = ingested(owner, model_files, tmp_path, version="1", seed=0)
    v2 = ingested(owner, model_files, tmp_path, version="2", seed=1)
    return v1, v2


@pytest.mark.django_db
def test_each_slot_shows_its_model_and_only_the_versions_that_fit(
    owner_client, owner, model_files, tmp_path, two_versions
):
    v1, _ = two_versions
    # Wrong task, and right task but the wrong input width: neither is offered.
    ingested(owner, model_files, tmp_path, name="det", task="detector")
    ingested(owner, model_files, tmp_path, name="wide", in_features=8)
    serving_slot("classifier", v1)
    html = owner_client.get("/settings").content.decode()
    assert '<div class="ref active-ref">clf@1</div>' in html
    assert options(html, "classifier") == ["olivia/clf@1", "olivia/clf@2"]
    assert "keep clf@1" in html
    assert 'hx-post="/settings/apply"' in html and 'id="apply-changes"' in html


@pytest.mark.django_db
def test_the_nav_and_the_title_both_say_slots(owner_client):
    html = owner_client.get("/settings").content.decode()
    assert '<a href="/settings" class="active">Slots</a>' in html
    assert "<title>Slots · modelmgr</title>" in html and "<h1>Slots</h1>" in html
    assert ">Settings<" not in html


@pytest.mark.django_db
def test_refresh_returns_only_the_slot_cards(owner_client, two_versions):
    serving_slot("classifier", two_versions[0])
    html = owner_client.get("/settings", **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="slots" class="grid slots"')
    assert "<nav" not in html


@pytest.mark.django_db
def test_apply_without_a_change_says_so_in_red(owner_client, two_versions):
    serving_slot("classifier", two_versions[0])
    html = owner_client.post(
        "/settings/apply", {"slot-classifier": "olivia/clf@1"}, **HTMX
    ).content.decode()
    assert 'class="msg err"' in html and "Nothing to apply" in html
    assert switch_run_latest() is None or not switch_run_latest().running


@pytest.mark.django_db
def test_apply_naming_an_unknown_slot_is_refused(owner_client, two_versions):
    html = owner_client.post(
        "/settings/apply", {"slot-nope": "olivia/clf@1"}, **HTMX
    ).content.decode()
    assert "there is no slot named &#x27;nope&#x27;" in html


@pytest.mark.django_db(transaction=True)
def test_a_switch_without_a_worker_ends_red_and_changes_nothing(
    owner_client, two_versions, settings
):
    from tests.workerproc import free_port

    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    v1, _ = two_versions
    serving_slot("classifier", v1)
    html = owner_client.post(
        "/settings/apply", {"slot-classifier": "olivia/clf@2"}, **HTMX
    ).content.decode()
    # The page answers at once with the switching panel; the phases come over the socket.
    run = switch_run_latest()
    assert html.lstrip().startswith('<div id="switch-status"></div>')
    assert f'<section id="run-{run.id}" class="panel run"' in html
    assert f'id="run-{run.id}-stepper"' in html and f'id="run-{run.id}-log"' in html
    outcome = finished_run_html(owner_client)
    assert 'class="msg err"' in outcome and "unavailable" in outcome
    assert "previous models keep serving" in outcome
    assert Slot.objects.get(name="classifier").active_version == v1
    failure = AuditEvent.objects.get(action="slot.switch")
    assert failure.outcome == "error" and failure.actor_label == "olivia"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_switching_a_slot_turns_green_and_the_card_shows_the_new_model(
    owner_client, two_versions, settings
):
    v1, v2 = two_versions
    serving_slot("classifier", v1)
    with start_worker() as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        owner_client.post("/settings/apply", {"slot-classifier": "olivia/clf@2"}, **HTMX)
        outcome = finished_run_html(owner_client)
        assert 'class="msg ok"' in outcome, outcome
        assert "<code>classifier</code> → <code>clf@2</code> (was clf@1)" in outcome
        assert '<div class="ref active-ref">clf@2</div>' in outcome  # slot cards, out of band
        assert Slot.objects.get(name="classifier").active_version == v2
        assert worker.client().get("/status").json()["slots"]["classifier"]["ref"] == "clf@2"

        # Roll back: the previous version serves again.
        page = owner_client.get("/settings").content.decode()
        assert 'id="rollback-classifier"' in page and "Roll back to clf@1" in page
        owner_client.post("/settings/classifier/rollback", **HTMX)
        outcome = finished_run_html(owner_client)
        assert 'class="msg ok"' in outcome and "Rolled back" in outcome
        assert Slot.objects.get(name="classifier").active_version == v1
    actions = list(
        AuditEvent.objects.filter(target_type="slot")
        .order_by("id")
        .values_list("action", "outcome", "actor_label")
    )
    assert actions == [("slot.switch", "ok", "olivia"), ("slot.rollback", "ok", "olivia")]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_slots_switch_together(owner_client, owner, model_files, tmp_path, settings):
    a1 = ingested(owner, model_files, tmp_path, name="a", version="1")
    a2 = ingested(owner, model_files, tmp_path, name="a", version="2", seed=2)
    b1 = ingested(owner, model_files, tmp_path, name="b", version="1", seed=3)
    b2 = ingested(owner, model_files, tmp_path, name="b", version="2", seed=4)
    serving_slot("left", a1)
    serving_slot("right", b1)
    with start_worker() as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        owner_client.post(
            "/settings/apply", {"slot-left": "olivia/a@2", "slot-right": "olivia/b@2"}, **HTMX
        )
        outcome = finished_run_html(owner_client)
    assert 'class="msg ok"' in outcome
    assert {s.name: s.active_version for s in Slot.objects.all()} == {"left": a2, "right": b2}
    switch = AuditEvent.objects.get(action="slot.switch")
    assert switch.target == "left,right"


@pytest.mark.django_db
def test_rollback_without_a_previous_version_is_refused(owner_client, two_versions):
    serving_slot("classifier", two_versions[0])
    html = owner_client.post("/settings/classifier/rollback", **HTMX).content.decode()
    assert "no previous version" in html


@pytest.mark.django_db
def test_without_javascript_apply_redirects_back_to_the_page(owner_client, two_versions):
    serving_slot("classifier", two_versions[0])
    response = owner_client.post("/settings/apply", {"slot-classifier": "olivia/clf@1"})
    assert response.status_code == 302 and response["Location"] == "/settings"


@pytest.mark.django_db(transaction=True)
def test_roll_back_to_a_version_no_longer_previous_is_refused(
    owner_client, owner, model_files, tmp_path
):
    v1 = ingested(owner, model_files, tmp_path, version="1", seed=0)
    v2 = ingested(owner, model_files, tmp_path, version="2", seed=1)
    v3 = ingested(owner, model_files, tmp_path, version="3", seed=2)
    slot = serving_slot("classifier", v3)
    Slot.objects.filter(pk=slot.pk).update(previous_version=v2)
    # The page rendered when the button said "Roll back to clf@1".
    owner_client.post(
        "/settings/classifier/rollback",
        {"rollback-to": "olivia/clf@1", "seen-classifier": "olivia/clf@2"},
        **HTMX,
    )
    outcome = finished_run_html(owner_client)
    assert "Rollback refused:" in outcome
    assert "can no longer roll back to olivia/clf@1: its previous version is clf@2" in outcome
    assert Slot.objects.get(name="classifier").active_version == v3
    assert v1.pk != Slot.objects.get(name="classifier").previous_version_id
    assert AuditEvent.objects.get(target_type="slot").outcome == "refused"


@pytest.mark.django_db
def test_batching_is_set_from_the_slot_card(staff_client, staff, model_files, tmp_path):
    version = ingested(staff, model_files, tmp_path, version="1")
    serving_slot("classifier", version)
    html = staff_client.get("/settings").content.decode()
    assert 'id="batching-classifier"' in html and "Dynamic batching: off" in html
    form = {
        "batch-size-classifier": "16",
        "batch-delay-classifier": "2000",
        "batch-preferred-classifier": "8, 4",
    }
    html = staff_client.post("/settings/classifier/batching", form, **HTMX).content.decode()
    assert "Batching on classifier: up to 16, waiting at most 2000 µs" in html
    slot = Slot.objects.get(name="classifier")
    assert (slot.max_batch_size, slot.preferred_batch_sizes) == (16, [4, 8])
    assert AuditEvent.objects.filter(action="slot.batching", target="classifier").exists()
    assert "Dynamic batching: up to 16" in staff_client.get("/settings").content.decode()
    form["batch-size-classifier"] = "many"
    html = staff_client.post("/settings/classifier/batching", form, **HTMX).content.decode()
    assert "max_batch_size must be an integer from 0 to 1024, got &#x27;many&#x27;" in html


@pytest.mark.django_db
def test_users_who_may_not_change_slots_see_no_batching_form(owner_client, two_versions):
    serving_slot("classifier", two_versions[0])
    assert 'id="batching-classifier"' not in owner_client.get("/settings").content.decode()
    response = owner_client.post(
        "/settings/classifier/batching", {"batch-size-classifier": "8"}, **HTMX
    )
    assert "only staff" in response.content.decode()
    assert Slot.objects.get(name="classifier").max_batch_size == 0
