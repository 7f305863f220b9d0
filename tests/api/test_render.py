"""The hot read routes build their JSON from the rows (modelmgr.api.render): it must be
exactly what the declared schemas would have produced."""

from __future__ import annotations

import json

import pytest
from ninja.responses import NinjaJSONEncoder

from modelmgr.api.render import model_dict, version_dict
from modelmgr.api.schemas import ModelOut, VersionOut
from modelmgr.models import ModelVersion, Provider, RegisteredModel, Tag
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db


def as_json(data) -> object:
    return json.loads(json.dumps(data, cls=NinjaJSONEncoder))


def schema_json(schema, obj) -> object:
    return as_json(schema.model_validate(obj).model_dump())


def test_a_version_renders_as_its_schema_would(owner):
    model = make_model(owner, "det", tags=("vision",))
    version = make_version(
        model,
        "1.0",
        files={"model.onnx": b"weights", "config.json": b"{}"},
        primary="model.onnx",
        signature={"inputs": [{"name": "x", "shape": ["batch", 3], "dtype": "float32"}]},
        val_accuracy=0.91,
        dependencies=["numpy>=2"],
        metadata={"dataset": "coco"},
        keep_alive_s=30.0,
    )
    fresh = ModelVersion.objects.select_related("model__owner", "created_by").get(pk=version.pk)
    assert as_json(version_dict(fresh)) == schema_json(VersionOut, fresh)


def test_a_provided_version_renders_its_provider(owner):
    provider = Provider.objects.create(
        name="ollama-box", kind="ollama", base_url="http://10.0.0.9:11434", owner=owner
    )
    model = make_model(owner, "llama", task="llm")
    version = ModelVersion.objects.create(
        model=model, version="3b", status="available", provider=provider, provider_model="x"
    )
    fresh = ModelVersion.objects.get(pk=version.pk)
    rendered = as_json(version_dict(fresh))
    assert rendered == schema_json(VersionOut, fresh)
    assert rendered["provider"] == "ollama-box" and rendered["files"] == []


@pytest.mark.parametrize("with_versions", [False, True])
def test_a_model_renders_as_its_schema_would(owner, with_versions):
    model = make_model(owner, "det", description="d", tags=("b", "a"))
    model.tags.add(Tag.objects.create(name="c"))
    if with_versions:
        make_version(model, "1")
        make_version(model, "2", status="error")
    fresh = RegisteredModel.objects.get(pk=model.pk)
    rendered = as_json(model_dict(fresh))
    assert rendered == schema_json(ModelOut, fresh)
    assert rendered["latest_version"] == ("1" if with_versions else None)
    assert rendered["version_count"] == (2 if with_versions else 0)


def test_the_routes_answer_json_with_the_api_content_type(api, owner):
    make_version(make_model(owner, "det"), "1")
    for path in (
        "/api/v1/models/det",
        "/api/v1/models",
        "/api/v1/models/det/versions",
        "/api/v1/models/det/versions/1",
        "/api/v1/versions/det",
    ):
        response = api.get(path)
        assert response.status_code == 200, (path, response.content)
        assert response["Content-Type"] == "application/json; charset=utf-8"
    assert api.get("/api/v1/versions/det").json()["ref"] == "det@1"
