"""/models/<name>: what a version is, how it is used, and the actions on it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from modelmgr.models import AuditEvent, ModelVersion, RegisteredModel, Tag
from modelmgr.storage import content_store
from tests.deploy.support import bucket_row
from tests.views.conftest import HTMX
from tests.views.support import ingested, serving_slot
from tests.workerproc import start_worker


@pytest.fixture
def clf(owner, model_files, tmp_path):
    version = ingested(owner, model_files, tmp_path, version="1")
    version.model.tags.add(Tag.objects.create(name="tabular"))
    ModelVersion.objects.filter(pk=version.pk).update(
        val_accuracy=0.93,
        python_version="3.11",
        dependencies=["onnxruntime>=1.20"],
        min_vram_mb=128,
        quantization="fp16",
    )
    return ModelVersion.objects.get(pk=version.pk)


def corrupt(version: ModelVersion) -> None:
    path = content_store().local_path(version.files.get().sha256)
    path.write_bytes(b"garbage" + path.read_bytes()[7:])


def act(client, version: ModelVersion, action: str) -> str:
    url = f"/models/{version.model.name}/versions/{version.version}/{action}"
    return client.post(url, **HTMX).content.decode()


@pytest.mark.django_db
def test_page_shows_versions_files_signature_metrics_requirements_and_tags(owner_client, clf):
    html = owner_client.get("/models/clf").content.decode()
    artifact = clf.files.get()
    assert "<h1>clf</h1>" in html and '<span class="badge info">tabular</span>' in html
    assert "<code>model.onnx</code>" in html and artifact.sha256 in html
    assert "<code>x</code>" in html and "<code>[batch, 4]</code>" in html
    assert "93.0 %" in html and "3.11" in html and "<code>onnxruntime&gt;=1.20</code>" in html
    assert "128 MB" in html and "fp16" in html
    assert '<a class="btn small" href="/api/v1/models/clf/versions/1/download" download>' in html
    for action in ("validate", "verify", "production-ready", "archive", "delete"):
        assert f'hx-post="/models/clf/versions/1/{action}"' in html


@pytest.mark.django_db
def test_usage_totals_and_the_latency_plot_come_from_the_stats(owner_client, clf):
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=3)
    bucket_row(clf, "classifier", minute, [0.5, 1.1] + [0.85] * 7, errors=1)
    page = owner_client.get("/models/clf").content.decode()
    # The page asks for the usage once shown (a busy version's day takes a moment).
    assert 'hx-get="/models/clf/versions/1/usage" hx-trigger="load"' in page
    html = owner_client.get("/models/clf/versions/1/usage").content.decode()
    assert '<strong>classifier</strong></td><td class="num">10</td>' in html
    assert '<span class="badge err">1</span>' in html
    assert 'id="latency-plot" data-plot="{&quot;x&quot;: [' + str(int(minute.timestamp())) in html
    assert "&quot;label&quot;: &quot;p95&quot;" in html
    assert "/static/vendor/uplot/uPlot.iife.min.js" in page


@pytest.mark.django_db
def test_usage_of_a_version_that_does_not_exist_is_a_404(owner_client, clf):
    reply = owner_client.get("/models/clf/versions/9/usage")
    assert reply.status_code == 404
    assert owner_client.get("/models/nope/versions/1/usage").status_code == 404


@pytest.mark.django_db
def test_usage_counts_every_minute_the_version_ever_served(owner_client, clf):
    """All time, not the plot's 24 h: the totals come from the running sums."""
    now = timezone.now()
    bucket_row(clf, "classifier", now - timedelta(days=40), [1.0, 2.0])
    bucket_row(clf, "classifier", now - timedelta(days=2), [3.0], errors=1)
    bucket_row(clf, "classifier", now - timedelta(minutes=5), [4.0])
    html = owner_client.get("/models/clf/versions/1/usage").content.decode()
    assert '<strong>classifier</strong></td><td class="num">5</td>' in html
    stamps = html.split("&quot;x&quot;: [", 1)[1].split("]", 1)[0]
    assert stamps == str(int((now - timedelta(minutes=5)).replace(second=0).timestamp()))


@pytest.mark.django_db
def test_choosing_a_version_swaps_only_its_panel(owner_client, owner, model_files, tmp_path, clf):
    ingested(owner, model_files, tmp_path, version="2", seed=5)
    html = owner_client.get("/models/clf", {"version": "1"}, **HTMX).content.decode()
    assert html.lstrip().startswith('<section id="version-panel">')
    assert "clf@1" in html and "<nav" not in html


@pytest.mark.django_db
def test_verify_hashes_is_green_when_intact_and_red_when_corrupt(owner_client, clf):
    html = act(owner_client, clf, "verify")
    assert 'class="msg ok"' in html and "match their sha256" in html
    corrupt(clf)
    html = act(owner_client, clf, "verify")
    assert 'class="msg err"' in html and "failed the integrity check" in html
    assert "✗ model.onnx" in html
    clf.refresh_from_db()
    assert clf.status == "error"
    # The versions table is refreshed out of band with the new status.
    assert '<div id="versions" class="table-wrap" hx-swap-oob="true">' in html
    assert '<span class="badge error">error</span>' in html


@pytest.mark.django_db
def test_mark_and_unmark_production_ready(owner_client, clf):
    html = act(owner_client, clf, "production-ready")
    assert "now marked production-ready" in html and ">Unmark production-ready<" in html
    clf.refresh_from_db()
    assert clf.production_ready
    act(owner_client, clf, "not-production-ready")
    clf.refresh_from_db()
    assert not clf.production_ready
    assert AuditEvent.objects.filter(action="version.update").count() == 2


@pytest.mark.django_db
def test_archive_and_unarchive(owner_client, clf):
    html = act(owner_client, clf, "archive")
    assert "clf@1 archived." in html and '<span class="badge archived">archived</span>' in html
    act(owner_client, clf, "unarchive")
    clf.refresh_from_db()
    assert clf.status == "available"


@pytest.mark.django_db
def test_archiving_a_version_a_slot_serves_is_refused_in_red(owner_client, clf):
    serving_slot("classifier", clf)
    html = act(owner_client, clf, "archive")
    assert 'class="msg err"' in html and "slot(s) classifier serve it" in html
    clf.refresh_from_db()
    assert clf.status == "available"


@pytest.mark.django_db
def test_deleting_a_version_asks_first_then_redirects(owner_client, clf, isolated_storage):
    page = owner_client.get("/models/clf").content.decode()
    assert '<details class="confirm"><summary class="btn small danger">Delete…</summary>' in page
    response = owner_client.post("/models/clf/versions/1/delete", **HTMX)
    assert response["HX-Redirect"] == "/models/clf"
    assert not ModelVersion.objects.exists()
    assert not list((isolated_storage / "sha256").rglob("*.*"))


@pytest.mark.django_db
def test_deleting_a_model_in_use_is_refused_then_allowed(owner_client, clf):
    slot = serving_slot("classifier", clf)
    html = owner_client.post("/models/clf/delete", **HTMX).content.decode()
    # Outside the confirm box, which closes again (inside it the refusal was hidden).
    assert 'role="alert" id="delete-model-error"' in html and "cannot be deleted" in html
    assert html.index("delete-model-error") < html.index("<details")
    assert RegisteredModel.objects.exists()
    slot.delete()
    response = owner_client.post("/models/clf/delete", **HTMX)
    assert response["HX-Redirect"] == "/models"
    assert not RegisteredModel.objects.exists()
    assert AuditEvent.objects.filter(action="model.delete").count() == 1


@pytest.mark.django_db
def test_someone_elses_model_is_not_found(client, other_user, clf):
    client.force_login(other_user)
    assert client.get("/models/clf").status_code == 404
    assert client.post("/models/clf/versions/1/archive", **HTMX).status_code == 404
    clf.refresh_from_db()
    assert clf.status == "available"


@pytest.mark.django_db
def test_staff_reach_another_owners_model_with_the_owner_in_the_query(staff_client, clf):
    html = staff_client.get("/models/clf?owner=olivia").content.decode()
    assert 'hx-post="/models/clf/versions/1/verify?owner=olivia"' in html


@pytest.mark.django_db
def test_validate_without_a_worker_re_inspects(owner_client, clf, settings):
    from tests.workerproc import free_port

    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    html = act(owner_client, clf, "validate")
    assert 'class="msg ok"' in html and "re-inspected instead" in html
    event = AuditEvent.objects.get(action="version.validate")
    assert event.outcome == "ok" and event.after == {"method": "re-inspection", "ok": True}


@pytest.mark.django_db
def test_validate_without_a_worker_finds_corruption(owner_client, clf, settings):
    from tests.workerproc import free_port

    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    corrupt(clf)
    html = act(owner_client, clf, "validate")
    assert 'class="msg err"' in html and "failed the integrity check" in html


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_validate_load_tests_the_version_in_the_worker(owner_client, clf, settings):
    with start_worker() as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        html = act(owner_client, clf, "validate")
        assert 'class="msg ok"' in html, html
        assert "answered a dummy input" in html and "CPUExecutionProvider" in html
        # Nothing serves it, so the worker let it go again.
        assert worker.client().get("/status").json()["models"] == []
        name = worker.client().get("/status").json()["name"]  # it registered itself
    event = AuditEvent.objects.get(action="version.validate")
    assert event.after == {"method": "load test", "ok": True, "worker": name}


@pytest.mark.django_db
def test_without_javascript_actions_redirect_with_a_message(owner_client, clf):
    response = owner_client.post("/models/clf/versions/1/production-ready")
    assert response.status_code == 302 and response["Location"] == "/models/clf?version=1"
    page = owner_client.get(response["Location"]).content.decode()
    assert "now marked production-ready" in page


@pytest.mark.django_db
def test_pin_and_unpin_through_the_service_with_the_badge_and_button(
    owner_client, clf, closed_port_worker
):
    page = owner_client.get("/models/clf").content.decode()
    assert 'hx-post="/models/clf/versions/1/pin"' in page and 'id="version-pinned"' not in page
    html = act(owner_client, clf, "pin")
    assert "clf@1 is pinned: the worker keeps it loaded" in html
    assert 'id="version-pinned"' in html and 'hx-post="/models/clf/versions/1/unpin"' in html
    assert 'title="kept loaded in the worker">pinned</span>' in html  # the versions table
    clf.refresh_from_db()
    assert clf.pinned is True
    event = AuditEvent.objects.get(action="version.pin")
    assert event.actor_label == "olivia" and event.after["pinned"] is True

    html = act(owner_client, clf, "unpin")
    assert "clf@1 is no longer pinned" in html and 'id="version-pinned"' not in html
    clf.refresh_from_db()
    assert clf.pinned is False and AuditEvent.objects.filter(action="version.unpin").exists()


@pytest.mark.django_db
def test_pinning_an_unsafe_untrusted_version_is_refused_in_red(owner_client, clf):
    ModelVersion.objects.filter(pk=clf.pk).update(unsafe=True)
    html = act(owner_client, clf, "pin")
    assert 'class="msg err"' in html and "an administrator has not marked trusted" in html
    clf.refresh_from_db()
    assert clf.pinned is False


@pytest.mark.django_db
def test_an_archived_version_offers_no_pin(owner_client, clf):
    act(owner_client, clf, "archive")
    page = owner_client.get("/models/clf?version=1").content.decode()
    assert "/versions/1/pin" not in page


@pytest.mark.django_db
def test_a_language_model_shows_tokens_ttft_and_speed_with_plots(owner_client, owner, clf):
    from tests.deploy.support import llm_bucket_row, version_of

    chat = version_of(owner, name="chat", task="llm")
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    llm_bucket_row(
        chat,
        "assistant",
        minute,
        ttfts=[40.0, 40.0, 40.0],
        rates=[25.0, 25.0, 25.0],
        prompt_tokens=321,
        completion_tokens=654,
        errors=1,
    )
    html = owner_client.get("/models/chat/versions/1/usage").content.decode()
    assert '<table id="llm-usage">' in html
    row = html[html.index('<table id="llm-usage">') :]
    assert '<strong>assistant</strong></td><td class="num">75.0 %</td>' in row
    assert '<td class="num">321</td><td class="num">654</td>' in row
    assert '<td class="num">40 ms</td><td class="num">40 ms</td>' in row
    assert '<td class="num">25.0 tok/s</td><td class="num">25.0 tok/s</td>' in row
    stamp = str(int(minute.timestamp()))
    for plot in ("ttft-plot", "speed-plot", "tokens-plot"):
        assert f'id="{plot}" data-plot="{{&quot;x&quot;: [{stamp}' in html
    assert "&quot;unit&quot;: &quot;tok/s&quot;" in html
    # A tensor model's page has none of it.
    tensor = owner_client.get("/models/clf/versions/1/usage").content.decode()
    assert "llm-usage" not in tensor and "ttft-plot" not in tensor
