"""/models/<name>: each row of the versions table (built in Python, see
modelmgr/views/version_rows.py) shows and links what the template did."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelmgr.models import ModelVersion
from modelmgr.views.version_rows import version_rows
from tests.registry.factories import make_model
from tests.views.conftest import table_row

pytestmark = pytest.mark.django_db


def row_of(html: str, version: str) -> str:
    return table_row(html, f"<code>{version}</code>")


@pytest.fixture
def det(owner):
    model = make_model(owner, "det")
    made = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    ModelVersion.objects.bulk_create(
        [
            ModelVersion(
                model=model,
                version="1.0",
                status="available",
                framework="onnx",
                size_bytes=2 * 1024 * 1024,
                val_accuracy=0.934,
                production_ready=True,
                pinned=True,
                created_by=owner,
            ),
            ModelVersion(
                model=model,
                version="2.0+cuda",
                status="archived",
                unsafe=True,
                framework="torchscript",
            ),
            ModelVersion(model=model, version="3.0", status="available", unsafe=True, trusted=True),
        ]
    )
    # created_at is set on insert: a fixed stamp for the date columns.
    ModelVersion.objects.filter(model=model, version="1.0").update(created_at=made)
    return model


def test_a_row_shows_status_badges_framework_size_accuracy_date_and_author(owner_client, det):
    html = owner_client.get("/models/det", {"version": "1.0"}).content.decode()
    row = row_of(html, "1.0")
    assert '<span class="badge available">available</span>' in row
    assert '<span class="badge prod">production-ready</span>' in row
    assert 'title="kept loaded in the worker">pinned</span>' in row
    assert "unsafe" not in row
    assert "<td>ONNX</td>" in row
    assert '<td class="num">2.0\xa0MB</td>' in row
    assert "<td>93.4 %</td>" in row
    assert 'title="2026-12-01T09:30:00+00:00">2026-12-01 09:30</td>' in row
    assert '<td class="small">olivia</td>' in row
    assert 'style="background:var(--info-bg)"' in row  # the version in the panel


def test_unsafe_shows_only_until_trusted_and_a_missing_author_is_a_dash(owner_client, det):
    html = owner_client.get("/models/det").content.decode()
    archived = row_of(html, "2.0+cuda")
    assert '<span class="badge archived">archived</span> <span class="badge err">unsafe</span>' in (
        archived
    )
    assert '<td class="small">–</td>' in archived and "<td>–</td>" in archived  # author, acc.
    assert "unsafe" not in row_of(html, "3.0")
    assert "info-bg" not in archived


def test_row_links_select_the_version_in_the_panel_and_keep_the_table_page(staff_client, det):
    html = staff_client.get("/models/det", {"owner": "olivia", "vcursor": "abc="}).content
    # A forged cursor shows an error instead of rows; the links are checked on a real page.
    assert b"is not a cursor" in html
    html = staff_client.get("/models/det", {"owner": "olivia"}).content.decode()
    row = row_of(html, "2.0+cuda")
    # '+' is encoded: in a query string it would read as a space.
    assert 'href="/models/det?version=2.0%2Bcuda&amp;owner=olivia"' in row
    assert 'hx-get="/models/det?version=2.0%2Bcuda&amp;owner=olivia"' in row
    assert 'hx-target="#version-panel"' in row
    selected = staff_client.get(
        "/models/det", {"owner": "olivia", "version": "2.0+cuda"}
    ).content.decode()
    assert "info-bg" in row_of(selected, "2.0+cuda")


def test_the_no_javascript_link_keeps_the_versions_cursor(owner):
    version = ModelVersion(version="1.0", status="available", created_at=datetime.now(UTC))
    [row] = version_rows(
        [version], selected=None, detail_url="/models/det", owner="", cursor="eyJ0Ijo=="
    )
    assert 'href="/models/det?version=1.0&amp;vcursor=eyJ0Ijo%3D%3D"' in row
    assert 'hx-get="/models/det?version=1.0"' in row


def test_every_value_is_escaped(owner):
    owner.username = 'o"<b>'
    version = ModelVersion(
        version='<img src=x onerror="alert(1)">',
        status="available",
        created_at=datetime.now(UTC),
        created_by=owner,
    )
    [row] = version_rows(
        [version], selected=None, detail_url="/models/det", owner='a"&b', cursor=""
    )
    assert "<img" not in row and "<b>" not in row
    assert "<code>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</code>" in row
    assert '<td class="small">o&quot;&lt;b&gt;</td>' in row
    assert "owner=a%22%26b" in row
