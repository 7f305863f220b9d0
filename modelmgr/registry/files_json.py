"""A version's files read in the same query as the version, as one JSON column.

``prefetch_related("files")`` costs a second round trip to the database. For the
registry's hottest read (a version named by ``name@version``, or a bare name) that trip
was a third of the request's queries, and on PostgreSQL sharing two cores with the web
process it decided whether reference resolution met its 5 ms p95
(benchmarks/RESULTS.md, registry, run 10). ``with_files_json`` adds a correlated
subquery that aggregates the version's files into a JSON array of rows (one seek on the
unique (version, path) index); ``attach_files`` turns that column back into
``ArtifactFile`` instances in the related manager's cache, exactly where
``prefetch_related("files")`` would have put them, in the same order.
"""

from __future__ import annotations

from django.contrib.postgres.aggregates import JSONBAgg
from django.db import connections
from django.db.models import Aggregate, F, JSONField, OuterRef, QuerySet, Subquery
from django.db.models.functions import JSONArray

from modelmgr.models import ArtifactFile, ModelVersion

FILES_JSON = "files_json"

# Every concrete field, in the order Model.from_db expects its values.
_FIELDS = ArtifactFile._meta.concrete_fields


class _JSONGroupArray(Aggregate):
    """SQLite's JSON array of the aggregated values. SQLite before 3.44 cannot order an
    aggregate's input: attach_files sorts by path, which under SQLite's BINARY collation
    is Python's own string order."""

    function = "JSON_GROUP_ARRAY"
    output_field = JSONField()


def with_files_json(versions: QuerySet) -> QuerySet:
    """``versions`` with each one's files as a JSON array of rows in ``FILES_JSON``
    (NULL for a version without files)."""
    row = JSONArray(*(F(f.attname) for f in _FIELDS))
    if connections[versions.db].vendor == "postgresql":
        # JSONB, not JSON: Django reads jsonb as text and parses it itself (plain json
        # arrives already parsed from psycopg, which JSONField cannot read).
        rows_of = JSONBAgg(row, order_by="path")
    else:
        rows_of = _JSONGroupArray(row)
    rows = (
        ArtifactFile.objects.filter(version_id=OuterRef("pk"))
        .order_by()
        .values("version_id")
        .annotate(rows=rows_of)
        .values("rows")
    )
    return versions.annotate(**{FILES_JSON: Subquery(rows, output_field=JSONField())})


def attach_files(version: ModelVersion) -> ModelVersion:
    """Move ``version``'s ``FILES_JSON`` into its files' prefetch cache: ``version.files
    .all()`` then answers without a query, as after ``prefetch_related("files")``."""
    rows = getattr(version, FILES_JSON) or []
    delattr(version, FILES_JSON)
    alias = version._state.db
    files = []
    for row in rows:
        values = [field.to_python(value) for field, value in zip(_FIELDS, row, strict=True)]
        artifact = ArtifactFile.from_db(alias, None, values)
        artifact.version = version
        files.append(artifact)
    if connections[alias].vendor == "sqlite":  # see _JSONGroupArray
        files.sort(key=lambda artifact: artifact.path)
    cached = version.files.get_queryset()
    cached._result_cache = files
    cached._prefetch_done = True
    version._prefetched_objects_cache = {"files": cached}
    return version
