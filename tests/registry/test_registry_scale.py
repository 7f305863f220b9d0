"""Naming a model or a version costs the same at 10 and at 200 versions: resolution of
a bare name, keyset pages of versions on (created_at, id), and the indexes behind them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from modelmgr.models import ModelVersion
from modelmgr.registry.selectors import version_list, version_resolve
from tests.registry.factories import make_model

pytestmark = pytest.mark.django_db

URL = "/api/v1/models"


def bulk_versions(model, n: int, *, status: str = "available") -> list[ModelVersion]:
    return ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=f"1.{i}", status=status, created_by=model.owner)
        for i in range(n)
    )


def test_bare_name_resolves_to_the_newest_available_version(owner):
    model = make_model(owner, "det")
    bulk_versions(model, 5)
    ModelVersion.objects.filter(model=model, version="1.4").update(status="archived")
    assert version_resolve(user=owner, ref="det").version == "1.3"


def test_bare_name_resolution_breaks_created_at_ties_by_id(owner):
    model = make_model(owner, "det")
    bulk_versions(model, 3)
    ModelVersion.objects.filter(model=model).update(created_at=timezone.now())
    assert version_resolve(user=owner, ref="det").version == "1.2"


def test_bare_name_resolution_skips_a_version_archived_since_the_model_was_read(owner):
    model = make_model(owner, "det")
    bulk_versions(model, 2)
    # What a stale latest_version would look like (a row read before the archive).
    ModelVersion.objects.filter(model=model, version="1.1").update(status="archived")
    model.refresh_from_db()
    assert model.latest_version == "1.0"
    assert version_resolve(user=owner, ref="det@1.1").status == "archived"
    assert version_resolve(user=owner, ref="det").version == "1.0"


def walk_pages(api, name: str, *, limit: int, params=None, between=None) -> list[str]:
    seen, cursor, page = [], None, 0
    while True:
        query = {"limit": limit, **(params or {})} | ({"cursor": cursor} if cursor else {})
        response = api.get(f"{URL}/{name}/versions", query)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [v["version"] for v in body["items"]]
        cursor = body["next_cursor"]
        page += 1
        if between:
            between(page)
        if not cursor:
            return seen


def test_keyset_pages_return_every_version_once_while_versions_arrive(api, owner):
    model = make_model(owner, "det")
    existing = bulk_versions(model, 23)
    # Five share one created_at: the id breaks the tie, also across a page boundary.
    tied = [v.pk for v in existing[8:13]]
    ModelVersion.objects.filter(pk__in=tied).update(created_at=existing[10].created_at)

    def arrive(page: int) -> None:
        ModelVersion.objects.create(model=model, version=f"new-{page}", status="available")

    seen = walk_pages(api, "det", limit=4, between=arrive)
    assert sorted(seen) == sorted(v.version for v in existing)
    assert len(seen) == len(set(seen))


def test_pages_filtered_by_status_walk_only_that_status(api, owner):
    model = make_model(owner, "det")
    versions = bulk_versions(model, 12)
    archived = {v.version for v in versions[::3]}
    ModelVersion.objects.filter(version__in=archived).update(status="archived")
    seen = walk_pages(api, "det", limit=2, params={"status": "archived"})
    assert sorted(seen) == sorted(archived)


def test_pages_are_newest_first(api, owner):
    model = make_model(owner, "det")
    versions = bulk_versions(model, 3)
    now = timezone.now()
    for i, v in enumerate(versions):  # 1.0 newest, 1.2 oldest
        ModelVersion.objects.filter(pk=v.pk).update(created_at=now - timedelta(minutes=i))
    assert walk_pages(api, "det", limit=2) == ["1.0", "1.1", "1.2"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "eyJpZCI6IDF9",  # {"id": 1}: a /models cursor, not a versions one
        "eyJ0Ijoibm90IGEgZGF0ZSIsImlkIjoxfQ",  # {"t":"not a date","id":1}
        "eyJ0IjoiMjAyNi0xMi0wNVQwODowMDowMCIsImlkIjoxfQ",  # a naive time
    ],
)
def test_a_malformed_cursor_is_a_400_naming_it(api, owner, cursor):
    bulk_versions(make_model(owner, "det"), 2)
    response = api.get(f"{URL}/det/versions", {"cursor": cursor})
    assert response.status_code == 400
    assert "is not a cursor this API handed out" in response.json()["detail"]


def queries_for(api, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = api.get(path)
    assert response.status_code == 200, response.content
    return len(queries.captured_queries)


@pytest.mark.parametrize(
    "path",
    [
        f"{URL}/det",
        f"{URL}/det/versions/1.5",
        "/api/v1/versions/det",
        "/api/v1/versions/det@1.5",
        f"{URL}/det/versions?limit=5",
        f"{URL}?limit=5",
    ],
)
def test_naming_a_model_takes_as_many_queries_at_200_versions_as_at_10(api, owner, path):
    model = make_model(owner, "det")
    bulk_versions(model, 10)
    queries_for(api, path)  # the first writes the token's last_used_at (once a minute)
    few = queries_for(api, path)
    ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=f"2.{i}", status="available") for i in range(190)
    )
    assert queries_for(api, path) == few


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return " | ".join(str(row[-1]) for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's EXPLAIN QUERY PLAN")
def test_sqlite_walks_the_indexes_without_sorting(owner):
    model = make_model(owner, "det")
    bulk_versions(model, 50)
    newest = ModelVersion.objects.filter(model=model, status="available").order_by(
        "-created_at", "-id"
    )[:1]
    newest_plan = plan(newest)
    assert "version_newest_by_status" in newest_plan and "TEMP B-TREE" not in newest_plan
    page = version_list(user=owner, model=model, limit=10)
    after = ModelVersion.objects.filter(model=model, created_at__lte=page.items[-1].created_at)
    page_plan = plan(after.order_by("-created_at", "-id")[:11])
    assert "USING INDEX version_newest" in page_plan and "TEMP B-TREE" not in page_plan
