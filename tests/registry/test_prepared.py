"""Prepared queries (modelmgr.registry.prepared) answer exactly what the ORM answers, for
every shape of the name lookup and for tokens, on whichever database the suite runs;
they compile once per thread, and a query whose placeholder cannot be found falls back
to the ORM instead of answering wrong."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from modelmgr.api.render import version_dict
from modelmgr.models import ApiToken, ModelVersion
from modelmgr.registry import selectors
from modelmgr.registry.prepared import PreparedQuery
from modelmgr.registry.tokens import token_for_use
from tests.conftest import make_token
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db


def plain(user, *, name, owner=None, version=None):
    """The lookup as the ORM alone would run it."""
    versions = ModelVersion.objects.visible_to(user).filter(model__name=name)
    if owner:
        versions = versions.filter(model__owner__username=owner)
    if version:
        versions = versions.filter(version=version)
    else:
        latest = versions.filter(status="available").order_by("-created_at", "-id")[:1]
        versions = versions.filter(pk__in=list(latest.values_list("pk", flat=True)))
    found = list(versions.select_related("model__owner", "created_by", "provider"))
    return found


@pytest.fixture
def registry(owner, other_user, staff):
    mine = make_model(owner, "clf")
    for v in ("1", "2", "3"):
        make_version(mine, v, files={"model.onnx": v.encode() * 10, "notes.txt": b"n" + v.encode()})
    make_version(mine, "4", status="archived")
    theirs = make_model(other_user, "clf")
    make_version(theirs, "9", files={"w.bin": b"theirs"})
    return owner, other_user, staff


def test_every_lookup_shape_answers_what_the_orm_answers(registry):
    owner, other_user, staff = registry
    cases = [
        (owner, {"name": "clf"}),
        (owner, {"name": "clf", "version": "2"}),
        (owner, {"name": "clf", "version": "4"}),
        (owner, {"name": "clf", "version": "9"}),  # someone else's: not found
        (owner, {"name": "clf", "owner": "olivia"}),
        (owner, {"name": "clf", "owner": "olivia", "version": "1"}),
        (owner, {"name": "clf", "owner": "oscar", "version": "9"}),
        (other_user, {"name": "clf"}),
        (staff, {"name": "clf", "owner": "oscar"}),
        (staff, {"name": "clf", "owner": "olivia", "version": "3"}),
        (owner, {"name": "nope"}),
    ]
    for _ in range(3):  # compiled on the first round, reused after
        for user, ask in cases:
            found = selectors._version_in_one_query(
                user=user, name=ask["name"], owner=ask.get("owner"), version=ask.get("version")
            )
            expected = plain(user, **ask)
            if len(expected) != 1:
                assert found is None, ask
                continue
            assert found is not None, ask
            want = ModelVersion.objects.prefetch_related("files").get(pk=expected[0].pk)
            assert version_dict(found) == version_dict(want), ask
            assert [f.path for f in found.files.all()] == [f.path for f in want.files.all()]


def test_a_prepared_lookup_compiles_nothing_and_is_one_query_with_its_files(registry):
    owner, _, _ = registry
    selectors._version_in_one_query(user=owner, name="clf", owner=None, version="2")
    calls = []
    original = SQLCompiler.as_sql

    def counting(self, *args, **kwargs):
        calls.append(self.query.model.__name__)
        return original(self, *args, **kwargs)

    SQLCompiler.as_sql = counting
    try:
        with CaptureQueriesContext(connection) as queries:
            found = selectors._version_in_one_query(user=owner, name="clf", owner=None, version="3")
            files = list(found.files.all())
    finally:
        SQLCompiler.as_sql = original
    assert found.ref == "clf@3" and [f.path for f in files] == ["model.onnx", "notes.txt"]
    assert len(queries) == 1  # the version with its model, owner and files
    assert calls == []  # neither was compiled again


def test_tokens_through_the_prepared_query(owner):
    raw = make_token(owner, name="robot")
    found = token_for_use(raw)
    assert found.name == "robot" and found.user == owner
    assert token_for_use(raw + "x") is None
    ApiToken.objects.filter(name="robot").update(revoked=True)
    assert token_for_use(raw) is None  # revoked: no cache, at once


@pytest.mark.django_db(transaction=True)  # the threads' connections must see the rows
def test_each_thread_compiles_its_own_and_gets_the_right_rows(registry):
    owner, _, _ = registry
    answers: dict[str, str] = {}
    errors = []

    def ask(version: str):
        try:
            found = selectors._version_in_one_query(
                user=owner, name="clf", owner=None, version=version
            )
            answers[version] = found.ref
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(v,)) for v in ("1", "2", "3") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and answers == {"1": "clf@1", "2": "clf@2", "3": "clf@3"}


def test_a_placeholder_the_query_transforms_falls_back_to_the_orm(registry, caplog):
    # icontains wraps the value in %...%: the placeholder is not among the parameters.
    query = PreparedQuery(
        lambda part: ModelVersion.objects.filter(model__name__icontains=part).order_by("version"),
        part="\x00part",
    )
    assert [v.version for v in query.run(part="LF")] == ["1", "2", "3", "4", "9"]
    assert [v.version for v in query.run(part="zz")] == []
    assert query._plain and "using the ORM" in caplog.text
    with pytest.raises(TypeError, match="part"):
        query.run(other="x")
