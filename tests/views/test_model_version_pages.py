"""/models/<name>: the versions table is a keyset page, walked with Older / Newest."""

from __future__ import annotations

import re

import pytest

from modelmgr.models import ModelVersion
from modelmgr.views.model_detail import VERSIONS_SHOWN
from tests.registry.factories import make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def many(owner):
    model = make_model(owner, "det")
    ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=f"1.{i}", status="available", created_by=owner)
        for i in range(VERSIONS_SHOWN + 5)
    )
    return model


def shown(response) -> list[str]:
    return re.findall(r'hx-get="[^"]*\?version=([\w.]+)', response.content.decode())


def test_older_versions_walks_every_version_once(owner_client, many):
    first = owner_client.get("/models/det")
    assert first.status_code == 200
    assert len(shown(first)) == VERSIONS_SHOWN
    assert b"30 versions in all" in first.content
    older = re.search(r'href="([^"]+)" id="older-versions"', first.content.decode())[1]
    second = owner_client.get(older.replace("&amp;", "&"))
    assert second.status_code == 200
    assert b"Newest versions" in second.content and b'id="older-versions"' not in second.content
    seen = shown(first) + shown(second)
    assert sorted(seen) == sorted(f"1.{i}" for i in range(VERSIONS_SHOWN + 5))


def test_a_version_from_an_older_page_can_be_selected(owner_client, many):
    response = owner_client.get("/models/det", {"version": "1.0"})
    assert response.status_code == 200
    assert b"det@1.0" in response.content


def test_a_forged_versions_cursor_is_a_red_error_not_a_crash(owner_client, many):
    response = owner_client.get("/models/det", {"vcursor": "garbage!"})
    assert response.status_code == 200
    assert b"is not a cursor" in response.content
