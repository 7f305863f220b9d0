"""/models: each row of the models table (built in Python, see modelmgr/views/model_rows.py)
shows and links what the template did; another owner's name is percent-encoded in every
link to the model page, so a username with a ``+`` opens its model."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from modelmgr.models import ModelVersion, RegisteredModel
from modelmgr.registry.selectors import model_queryset
from modelmgr.views.model_rows import model_rows
from tests.registry.factories import make_model, make_version
from tests.views.conftest import table_row

pytestmark = pytest.mark.django_db


def row_of(html: str, name: str) -> str:
    return table_row(html, f"<strong>{name}</strong>")


def test_a_row_shows_task_framework_latest_count_tags_owner_and_age(owner_client, catalogue):
    RegisteredModel.objects.filter(name="yolo-small").update(
        updated_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    )
    row = row_of(owner_client.get("/models").content.decode(), "yolo-small")
    assert '<a href="/models/yolo-small"><strong>yolo-small</strong></a>' in row
    assert '<div class="muted small">fast detector</div>' in row
    assert '<td><span class="badge">detector</span></td>' in row
    assert "<td>ONNX</td>" in row
    assert "<td><code>1</code></td>" in row
    assert '<td class="num">1</td>' in row
    assert '<span class="badge">vision</span> ' in row and '<span class="badge">edge</span> ' in row
    assert "<td>olivia</td>" in row
    assert 'title="2026-12-01T09:30:00+00:00">' in row and " ago</td>" in row


def test_a_model_without_versions_tags_or_framework_says_so(owner_client, catalogue):
    row = row_of(owner_client.get("/models").content.decode(), "empty-one")
    assert '<span class="muted">none available</span>' in row
    assert '<td class="num">0</td>' in row
    assert '<td><span class="muted">–</span></td>' in row  # no tags
    assert "<td>–</td>" in row  # no framework
    assert ">just now</td>" in row
    assert 'class="muted small">' not in row.split("</td>")[0]  # no description line


def test_the_latest_available_version_and_the_count_follow_the_versions(owner_client, owner):
    model = make_model(owner, "cam")
    make_version(model, "1.0")
    make_version(model, "2.0")
    ModelVersion.objects.filter(model=model, version="2.0").update(status="archived")
    row = row_of(owner_client.get("/models").content.decode(), "cam")
    assert "<td><code>1.0</code></td>" in row and '<td class="num">2</td>' in row


def test_a_long_description_is_cut_at_80_characters(owner_client, owner):
    make_model(owner, "wordy", description="word " * 40)
    row = row_of(owner_client.get("/models").content.decode(), "wordy")
    shown = re.search(r'<div class="muted small">(.*?)</div>', row)[1]
    assert len(shown) == 80 and shown.endswith("…")


def test_every_value_is_escaped(owner):
    model = make_model(owner, "odd", description='<script>alert("x")</script> & more')
    model.tags.create(name="<b>bold</b>")
    [fetched] = model_queryset(user=owner).filter(pk=model.pk)
    [row] = model_rows([fetched], viewer=owner)
    assert "<script>" not in row and "<b>" not in row
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in row
    assert '<span class="badge">&lt;b&gt;bold&lt;/b&gt;</span>' in row


def test_rows_of_models_fetched_without_the_prefetch_read_their_tags(owner):
    model = make_model(owner, "plain", tags=("edge",))
    [row] = model_rows([RegisteredModel.objects.get(pk=model.pk)], viewer=owner)
    assert '<span class="badge">edge</span>' in row


@pytest.fixture
def plus_owner():
    """A username Django allows with a ``+``: unencoded in a query, it reads as a space."""
    user = get_user_model().objects.create_user("ann+bot", password="pw")
    model = make_model(user, "arm", framework="onnx")
    make_version(model, "1.0+cuda")
    make_version(model, "2.0")
    ModelVersion.objects.filter(model=model, version="1.0+cuda").update(
        created_at=datetime.now(UTC) - timedelta(days=1)
    )
    return model


def test_staff_follow_the_link_to_a_model_whose_owner_has_a_plus(staff_client, plus_owner):
    row = row_of(staff_client.get("/models").content.decode(), "arm")
    href = re.search(r'<a href="([^"]+)"><strong>arm</strong>', row)[1]
    assert href == "/models/arm?owner=ann%2Bbot"
    page = staff_client.get(href)
    assert page.status_code == 200 and b"<code>2.0</code>" in page.content


def test_the_model_page_links_and_redirects_keep_the_owner_and_version(staff_client, plus_owner):
    html = staff_client.get("/models/arm", {"owner": "ann+bot"}).content.decode()
    # The version panel's own requests (usage, downloads, actions) name the owner.
    usage = re.search(r'id="usage-panel" hx-get="([^"]+)"', html)[1]
    assert usage.endswith("?owner=ann%2Bbot")
    assert staff_client.get(usage).status_code == 200
    # An action without JavaScript redirects to the page on the same version.
    answer = staff_client.post("/models/arm/versions/1.0%2Bcuda/pin?owner=ann%2Bbot")
    assert answer.status_code == 302
    assert answer["Location"] == "/models/arm?owner=ann%2Bbot&version=1.0%2Bcuda"
    selected = staff_client.get(answer["Location"]).content.decode()
    assert 'id="version-panel"' in selected
    assert re.search(
        r'style="background:var\(--info-bg\)"><td><a [^>]*><code>1.0\+cuda</code>', selected
    )
