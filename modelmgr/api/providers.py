"""/providers: external Ollama / OpenAI-compatible servers and their discovered models.

Staff only (a token's user must be staff; writes need the ``write`` scope). The API key
is write-only: answers show ``api_key`` masked (``sk-…abcd``) and ``has_api_key``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from modelmgr.api.auth import request_actor_label
from modelmgr.api.openapi import ErrorOut
from modelmgr.providers import services
from modelmgr.providers.discovery import provider_discover

router = Router(tags=["providers"])


class ProviderModelOut(Schema):
    name: str
    ref: str
    status: str


class ProviderOut(Schema):
    name: str
    kind: str
    base_url: str
    api_key: str = Field(description="masked: the key is never shown back in full")
    has_api_key: bool
    description: str
    owner: str
    discovered_at: datetime | None
    discovery_error: str
    models: list[ProviderModelOut]
    created_at: datetime
    updated_at: datetime


class ProviderIn(Schema):
    name: str = Field(description="slug, unique", examples=["lab-vllm"])
    kind: str = Field(description="openai (vLLM, llama.cpp, a hosted API) or ollama")
    base_url: str = Field(
        description="openai: the base URL the openai client takes (…/v1; added when the URL "
        "has no path); ollama: http://host:11434",
        examples=["http://gpu-box:8000/v1"],
    )
    api_key: str | None = Field("", description="sent as Authorization: Bearer")
    description: str = ""


class ProviderPatch(Schema):
    base_url: str | None = None
    api_key: str | None = Field(None, description='"" removes the key; left out keeps it')
    description: str | None = None


class DiscoveredOut(Schema):
    name: str
    ref: str | None
    outcome: str


class DiscoveryOut(Schema):
    provider: str
    models: list[DiscoveredOut]
    created: list[str]
    missing: list[str]


def _list() -> list[dict[str, Any]]:
    return [services.provider_payload(p) for p in services.provider_list()]


@router.get("/providers", response=list[ProviderOut], summary="List providers (staff)")
def list_providers(request: HttpRequest):
    services.require_admin(request.user, "see providers")
    return _list()


@router.post("/providers", response={201: ProviderOut}, summary="Register a provider (staff)")
def create_provider(request: HttpRequest, payload: ProviderIn):
    """The URL passes the same SSRF rules as imports (MODELMGR_IMPORT_ALLOWED_HOSTS,
    MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS): a refused host is a 422 naming the rule."""
    provider = services.provider_create(
        name=payload.name,
        kind=payload.kind,
        base_url=payload.base_url,
        api_key=payload.api_key,
        description=payload.description,
        actor=request.user,
        actor_label=request_actor_label(request),
    )
    return Status(201, services.provider_payload(provider))


@router.get("/providers/{name}", response=ProviderOut, summary="Show a provider (staff)")
def get_provider(request: HttpRequest, name: str):
    services.require_admin(request.user, "see providers")
    return services.provider_payload(services.provider_get(name=name))


@router.patch("/providers/{name}", response=ProviderOut, summary="Change a provider (staff)")
def update_provider(request: HttpRequest, name: str, payload: ProviderPatch):
    services.require_admin(request.user, "change providers")
    changes = payload.dict(exclude_unset=True)
    provider = services.provider_update(
        provider=services.provider_get(name=name),
        base_url=changes.get("base_url"),
        api_key=changes.get("api_key"),
        description=changes.get("description"),
        actor=request.user,
        actor_label=request_actor_label(request),
    )
    return services.provider_payload(provider)


@router.delete("/providers/{name}", response={204: None}, summary="Delete a provider (staff)")
def delete_provider(request: HttpRequest, name: str):
    """Refused with 409 while a slot serves one of its models."""
    services.require_admin(request.user, "delete providers")
    services.provider_delete(
        provider=services.provider_get(name=name),
        actor=request.user,
        actor_label=request_actor_label(request),
    )
    return Status(204, None)


@router.post(
    "/providers/{name}/discover",
    response={200: DiscoveryOut, 502: ErrorOut, 503: ErrorOut, 504: ErrorOut},
    summary="Discover its models (staff)",
)
def discover_provider(request: HttpRequest, name: str):
    """Ask the provider for its models (OpenAI ``GET /models``, Ollama ``GET /api/tags``)
    and record each as a provided version ``<provider>-<model>@remote``. Idempotent. A
    provider that is down, slow or refuses the key: 502/504 naming it; nothing lost."""
    services.require_admin(request.user, "discover a provider's models")
    return provider_discover(
        provider=services.provider_get(name=name),
        actor=request.user,
        actor_label=request_actor_label(request),
    )
