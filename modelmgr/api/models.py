"""/models: register, list, show, change and delete models."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.api.render import json_response, model_dict
from modelmgr.api.schemas import ModelIn, ModelOut, ModelPage, ModelPatch
from modelmgr.registry import selectors, services
from modelmgr.registry.pagination import MAX_LIMIT

router = Router(tags=["models"])


class ModelFilters(Schema):
    q: str | None = Field(None, description="text in the name, description or tags")
    task: str | None = None
    framework: str | None = Field(None, description="of the model or of one of its versions")
    tag: str | None = None
    owner: str | None = Field(None, description="username")
    status: str | None = Field(None, description="some version has this status")
    production_ready: bool | None = Field(None, description="some version is production ready")
    max_vram_mb: int | None = Field(None, description="some version is known to fit this VRAM")
    family: str | None = Field(None, description="some version is of this family (any case)")
    purpose: str | None = Field(None, description="some version has this purpose")
    max_params: str | None = Field(
        None, description='some version has at most this many parameters: "8B", "500M", 1000'
    )
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(50, ge=1, le=MAX_LIMIT)


def _out(request: HttpRequest, model) -> object:
    # Re-read through the selector for the summary annotations (latest version, counts).
    return selectors.model_queryset(user=request.user).get(pk=model.pk)


@router.post("/models", response={201: ModelOut}, summary="Register a model")
def create_model(request: HttpRequest, payload: ModelIn):
    model = services.model_create(
        owner=request.user,
        name=payload.name,
        task=payload.task,
        framework=payload.framework,
        description=payload.description,
        tags=payload.tags,
        actor_label=request_actor_label(request),
    )
    return Status(201, _out(request, model))


@router.get("/models", response=ModelPage, summary="List models (newest first, keyset pages)")
def list_models(request: HttpRequest, filters: Query[ModelFilters]):
    page = selectors.model_list(user=request.user, **filters.dict())
    items = [model_dict(m) for m in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor})


@router.get("/models/{name}", response=ModelOut, summary="Show a model")
def get_model(request: HttpRequest, name: str, owner: str | None = None):
    return json_response(model_dict(selectors.model_get(user=request.user, name=name, owner=owner)))


@router.patch("/models/{name}", response=ModelOut, summary="Change task, framework, text, tags")
def update_model(request: HttpRequest, name: str, payload: ModelPatch, owner: str | None = None):
    model = selectors.model_get(user=request.user, name=name, owner=owner)
    changes = payload.dict(exclude_unset=True)
    model = services.model_update(
        model=model, actor=request.user, actor_label=request_actor_label(request), **changes
    )
    return _out(request, model)


@router.delete("/models/{name}", response={204: None}, summary="Delete a model and its versions")
def delete_model(request: HttpRequest, name: str, owner: str | None = None):
    model = selectors.model_get(user=request.user, name=name, owner=owner)
    services.model_delete(model=model, actor=request.user, actor_label=request_actor_label(request))
    return Status(204, None)
