"""The model page's profile button and table, and the compare page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from modelmgr.models import AuditEvent, VersionProfile
from tests.deploy.live import live_worker
from tests.deploy.support import profile_row, version_of
from tests.views.conftest import HTMX
from tests.views.support import ingested

RENAMED = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "scores", "shape": ["batch", 2], "dtype": "float32"}],
}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_profile_button_measures_the_version_and_shows_the_table(
    owner_client, settings, owner, model_files, tmp_path
):
    ingested(owner, model_files, tmp_path, version="1")
    page = owner_client.get(reverse("model-detail", args=["clf"]))
    assert b"Not profiled yet." in page.content and b'id="profile-run"' in page.content
    url = reverse("version-action", args=["clf", "1", "profile"])
    with live_worker(settings):
        response = owner_client.post(url, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Profiled clf@1 on cpu" in html
    took = VersionProfile.objects.get().duration_s
    # Under a second in milliseconds (a tiny model's profile said "in 0.0 s").
    said = f" in {took * 1000:.0f} ms: " if took < 1 else f" in {took:.1f} s: "
    assert said in html and " in 0.0 s" not in html
    assert 'id="profile-table"' in html and "dynamic batch" in html
    for batch in (1, 2, 4, 8):
        assert f'<td class="num">{batch}</td>' in html
    assert VersionProfile.objects.count() == 1
    assert AuditEvent.objects.filter(action="version.profile", outcome="ok").count() == 1
    # The stored profile is on the page afterwards.
    page = owner_client.get(reverse("model-detail", args=["clf"]))
    assert b'id="profile-table"' in page.content and b"Profile again" in page.content


@pytest.mark.django_db
def test_a_refused_profile_says_why_on_the_page(owner_client, settings, owner):
    version_of(owner, "clf", "1")
    settings.MODELMGR_WORKER_URL = "http://127.0.0.1:9"
    url = reverse("version-action", args=["clf", "1", "profile"])
    response = owner_client.post(url, **HTMX)
    assert response.status_code == 200
    assert b"unavailable" in response.content and b'class="msg err"' in response.content
    assert not VersionProfile.objects.exists()


@pytest.mark.django_db
def test_the_compare_page_shows_the_signature_diff_and_profiles(owner_client, owner):
    a = version_of(owner, "det", "1", task="detector", val_accuracy=0.8)
    b = version_of(owner, "det", "2", task="detector", val_accuracy=0.9, signature=RENAMED)
    profile_row(a, 2.0)
    profile_row(b, 1.0)
    page = owner_client.get(reverse("model-detail", args=["det"]) + "?version=2")
    assert b'id="compare-form"' in page.content and b"olivia/det@1" in page.content
    response = owner_client.get(reverse("models-compare"), {"a": "det@1", "b": "det@2"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Breaking for callers of det@1" in html and "renamed" in html
    assert 'id="compare-profile"' in html and "0.5" in html  # p50 ratio b/a
    assert "val_accuracy" in html


@pytest.mark.django_db
def test_the_compare_page_names_a_missing_version(owner_client, owner):
    version_of(owner, "det", "1")
    response = owner_client.get(reverse("models-compare"), {"a": "det@1", "b": "det@7"})
    assert response.status_code == 404
    assert b'id="compare-error"' in response.content and b"7" in response.content
    half = owner_client.get(reverse("models-compare"), {"a": "det@1"})
    assert half.status_code == 400 and b"give two versions" in half.content
