"""/settings and health watches: the Apply form's watch fields, the slot card's watch
state, and the live push of a watch's change to every open page."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connections

from modelmgr.deploy.watch import watch_start
from modelmgr.deploy.watch_rules import Thresholds
from modelmgr.events import EVENTS_GROUP
from modelmgr.models import AuditEvent, Slot, SwitchWatch
from modelmgr.views.switching import switch_run_latest
from tests.inference.support import eventually
from tests.views.conftest import HTMX
from tests.views.support import ingested, serving_slot
from tests.views.test_consumers import logged_in
from tests.views.test_settings_page import finished_run_html
from tests.workerproc import start_worker


@pytest.fixture
def two_versions(owner, model_files, tmp_path):
    v1 = ingested(owner, model_files, tmp_path, version="1", seed=0)
    v2 = ingested(owner, model_files, tmp_path, version="2", seed=1)
    return v1, v2


def rolled_back_watch(v1, v2) -> SwitchWatch:
    """A watch as the watcher leaves it after an automatic rollback."""
    Slot.objects.filter(name="classifier").update(active_version=v2, previous_version=v1)
    watch = watch_start(
        slot="classifier",
        version=v2,
        baseline={"count": 40, "p95_ms": 0.8},
        thresholds=Thresholds(window_s=30, max_error_rate=0.05),
        run=False,
    )
    verdict = "error rate 0.42 > 0.05 (24 failed) over 57 requests in 12.0 s"
    SwitchWatch.objects.filter(pk=watch.pk).update(
        state="rolled_back",
        verdict=verdict,
        figures={"count": 57, "errors": 24, "error_rate": 0.421, "p95_ms": 0.9},
    )
    Slot.objects.filter(name="classifier").update(active_version=v1, previous_version=v2)
    return watch


@pytest.mark.django_db
def test_the_apply_form_offers_a_health_watch(owner_client, two_versions):
    serving_slot("classifier", two_versions[0])
    html = owner_client.get("/settings").content.decode()
    assert 'name="watch-window"' in html and 'name="watch-error-rate"' in html
    assert 'name="watch-p95-ratio"' in html and 'name="watch-min-requests"' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"watch-window": "abc"}, "window_s must be a number"),
        ({"watch-window": "30"}, "needs max_error_rate, max_p95_ratio or both"),
        ({"watch-window": "30", "watch-error-rate": "5"}, "max_error_rate is a fraction"),
        ({"watch-error-rate": "0.1"}, "watch.window_s is required"),
    ],
)
def test_bad_watch_fields_are_refused_in_red_and_nothing_switches(
    owner_client, two_versions, fields, words
):
    serving_slot("classifier", two_versions[0])
    html = owner_client.post(
        "/settings/apply", {"slot-classifier": "olivia/clf@2", **fields}, **HTMX
    ).content.decode()
    assert 'class="msg err"' in html and words in html
    assert switch_run_latest() is None or not switch_run_latest().running
    assert Slot.objects.get(name="classifier").active_version == two_versions[0]
    assert not SwitchWatch.objects.exists()


@pytest.mark.django_db
def test_the_slot_card_shows_an_automatic_rollback_with_its_figures(owner_client, two_versions):
    serving_slot("classifier", two_versions[0])
    rolled_back_watch(*two_versions)
    html = owner_client.get("/settings").content.decode()
    assert 'id="watch-classifier" data-state="rolled_back"' in html
    assert "ROLLED BACK automatically" in html and "olivia/clf@2" in html
    assert "error rate 0.42 &gt; 0.05 (24 failed) over 57 requests in 12.0 s" in html
    assert "57 requests, 24 failed, p95 0.9 ms (before: 0.8 ms)" in html


@pytest.mark.django_db(transaction=True)
async def test_a_watch_update_pushes_the_slot_cards_to_open_pages(
    django_user_model, owner, model_files, tmp_path
):
    def prepare():
        v1 = ingested(owner, model_files, tmp_path, version="1", seed=0)
        v2 = ingested(owner, model_files, tmp_path, version="2", seed=1)
        serving_slot("classifier", v1)
        return rolled_back_watch(v1, v2)

    watch = await database_sync_to_async(prepare)()
    _, ws = await logged_in(django_user_model, username="ward", is_staff=True)
    try:
        await get_channel_layer().group_send(
            EVENTS_GROUP, {"type": "watch.update", "watch": {"id": watch.pk}}
        )
        html = await ws.receive_from(timeout=10)
        assert 'id="slots"' in html and 'hx-swap-oob="true"' in html
        assert 'data-state="rolled_back"' in html and "ROLLED BACK automatically" in html
    finally:
        await ws.disconnect()
        await database_sync_to_async(connections.close_all)()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_watched_switch_from_the_page_shows_its_watch_until_the_verdict(
    owner_client, two_versions, settings
):
    settings.MODELMGR_WATCH_POLL_S = 0.2
    settings.MODELMGR_STATS_FLUSH_S = 0.2
    v1, v2 = two_versions
    serving_slot("classifier", v1)
    with start_worker(env={"MODELMGR_STATS_FLUSH_S": "0.2"}) as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        owner_client.post(
            "/settings/apply",
            {
                "slot-classifier": "olivia/clf@2",
                "watch-window": "1",
                "watch-error-rate": "0.05",
                "watch-min-requests": "5",
            },
            **HTMX,
        )
        outcome = finished_run_html(owner_client)
        assert 'class="msg ok"' in outcome, outcome
        watch = SwitchWatch.objects.get()
        assert watch.actor_label == "olivia" and watch.thresholds["window_s"] == 1
        eventually(lambda: SwitchWatch.objects.get().state != "running", what="the watch's verdict")
    html = owner_client.get("/settings").content.decode()
    # No robot called during the window: too few requests to judge; the version stays.
    assert 'data-state="inconclusive"' in html
    assert "only 0 requests" in html and "min_requests 5" in html
    assert Slot.objects.get(name="classifier").active_version == v2
    assert AuditEvent.objects.filter(action="slot.watch.inconclusive").count() == 1
