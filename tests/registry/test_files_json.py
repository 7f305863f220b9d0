"""A version's files read in its own query (modelmgr.registry.files_json) are the files
``prefetch_related("files")`` reads: every field, the same order, and none for a version
without files, on whichever database the suite runs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modelmgr.models import ModelVersion
from modelmgr.registry.files_json import attach_files, with_files_json
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db

FIELDS = ("id", "version_id", "path", "size", "sha256", "content_type", "is_primary")


def rows(files):
    return [tuple(getattr(artifact, name) for name in FIELDS) for artifact in files]


def test_files_from_the_json_column_are_the_prefetched_files(owner):
    model = make_model(owner, "clf")
    # Upper before lower case, '_' after letters, a non-ASCII name: an order a
    # collation-blind sort on either side would get wrong.
    paths = ["b.txt", "A.txt", "a_b", "ab", "é.bin", "sub/model.onnx", "Z"]
    make_version(model, "1", files={p: p.encode() * 3 for p in paths}, primary="ab")
    make_version(model, "empty", files={})
    for version in ("1", "empty"):
        want = ModelVersion.objects.prefetch_related("files").get(model=model, version=version)
        with CaptureQueriesContext(connection) as queries:
            got = attach_files(with_files_json(ModelVersion.objects).get(pk=want.pk))
            files = list(got.files.all())
            primary = [artifact.path for artifact in files if artifact.is_primary]
        assert len(queries) == 1  # the version and its files, nothing after
        assert rows(files) == rows(want.files.all())
        assert all(artifact.version is got for artifact in files)
        assert primary == (["ab"] if version == "1" else [])
        assert not hasattr(got, "files_json")


def test_a_file_read_from_json_saves_like_any_other(owner):
    version = make_version(make_model(owner, "clf"), "1", files={"w.bin": b"w"})
    got = attach_files(with_files_json(ModelVersion.objects).get(pk=version.pk))
    artifact = got.files.all()[0]
    artifact.content_type = "application/x-test"
    artifact.save(update_fields=["content_type"])
    assert version.files.get().content_type == "application/x-test"
