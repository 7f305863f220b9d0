"""Providers: register, change, delete (audited, staff only), and their reads.

A provider's URL passes the import guard's SSRF rules when it is registered or changed
(and again each time it is reached: discovery, and the worker's load). Its API key is
stored as given because it must be sent; every answer shows ``masked_key`` instead.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from modelmgr.audit import audit_record
from modelmgr.deploy.plan import as_actor
from modelmgr.exceptions import Forbidden, InUse, NotFound, VersionConflict
from modelmgr.models import ModelVersion, Provider
from modelmgr.providers import protocol
from modelmgr.providers.transport import guard_base_url
from modelmgr.registry.services import serving_slots
from modelmgr.registry.switch_guard import outside_switches
from modelmgr.registry.validation import InvalidInput

NAME_MAX = 64
KEY_MAX = 1000


def require_admin(actor, doing: str) -> None:
    actor = as_actor(actor)
    if not (actor.is_staff or actor.is_superuser):
        raise Forbidden(f"only staff may {doing}")


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > NAME_MAX:
        raise InvalidInput(f"a provider name is 1-{NAME_MAX} characters, got {name!r}")
    try:
        validate_slug(name)
    except ValidationError:
        raise InvalidInput(
            f"provider name {name!r} may hold only letters, digits, '-' and '_'"
        ) from None
    return name


def _clean_kind(kind: Any) -> str:
    if kind not in protocol.KINDS:
        raise InvalidInput(f"kind {kind!r} is not one of: {', '.join(protocol.KINDS)}")
    return kind


def _clean_key(key: Any) -> str:
    if key is None:
        return ""
    if not isinstance(key, str) or len(key) > KEY_MAX or any(c in key for c in "\r\n"):
        raise InvalidInput(f"api_key must be one line of at most {KEY_MAX} characters")
    return key.strip()


def provider_snapshot(provider: Provider) -> dict[str, Any]:
    """What the audit trail and the API show: never the key itself."""
    return {
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "api_key": provider.masked_key,
        "description": provider.description,
    }


def provider_payload(provider: Provider) -> dict[str, Any]:
    versions = ModelVersion.objects.filter(provider=provider).select_related("model")
    return {
        **provider_snapshot(provider),
        "has_api_key": bool(provider.api_key),
        "owner": provider.owner.get_username(),
        "discovered_at": provider.discovered_at,
        "discovery_error": provider.discovery_error,
        "models": [
            {"name": v.provider_model, "ref": v.ref, "status": v.status}
            for v in versions.order_by("provider_model")
        ],
        "created_at": provider.created_at,
        "updated_at": provider.updated_at,
    }


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.select_related("owner").order_by("name")


def provider_get(*, name: str) -> Provider:
    provider = provider_list().filter(name=name).first()
    if provider is None:
        raise NotFound(f"there is no provider named {name!r}")
    return provider


def provider_create(
    *,
    name: str,
    kind: str,
    base_url: str,
    actor,
    api_key: str | None = "",
    description: str = "",
    actor_label: str | None = None,
) -> Provider:
    """Register a provider: 400/422 for a bad name, kind or URL (SSRF rules), 409 when
    the name is taken. Nothing is asked of the provider yet (see providers.discovery)."""
    require_admin(actor, "register providers")
    name, kind = _clean_name(name), _clean_kind(kind)
    base, _ = guard_base_url(kind, base_url)
    key = _clean_key(api_key)
    try:
        with transaction.atomic():
            provider = Provider.objects.create(
                name=name,
                kind=kind,
                base_url=base,
                api_key=key,
                description=description or "",
                owner=as_actor(actor),
            )
            audit_record(
                actor=actor,
                actor_label=actor_label,
                action="provider.create",
                target_type="provider",
                target=name,
                after=provider_snapshot(provider),
            )
    except IntegrityError:
        raise VersionConflict(f"a provider named {name!r} already exists") from None
    return provider


def provider_update(
    *,
    provider: Provider,
    actor,
    base_url: str | None = None,
    api_key: str | None = None,
    description: str | None = None,
    actor_label: str | None = None,
) -> Provider:
    """Change what is given (``None`` keeps it; ``api_key=""`` removes the key). A slot
    serving one of its models picks the change up when the provider refuses the old key
    or cannot be reached at the old URL (inference.runtimes.provider reads it again)."""
    require_admin(actor, "change providers")
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
        before = provider_snapshot(provider)
        if base_url is not None:
            provider.base_url, _ = guard_base_url(provider.kind, base_url)
        if api_key is not None:
            provider.api_key = _clean_key(api_key)
        if description is not None:
            provider.description = description
        provider.save()
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="provider.update",
            target_type="provider",
            target=provider.name,
            before=before,
            after=provider_snapshot(provider),
        )
    return provider


def provider_delete(*, provider: Provider, actor, actor_label: str | None = None) -> None:
    """Delete a provider and the versions discovered from it (they hold no files).

    Refused (409) while a slot serves one of its models, as for any version a slot
    serves; never during a switch (registry.switch_guard).
    """
    require_admin(actor, "delete providers")
    with outside_switches(doing=f"deleting provider {provider.name}"), transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
        versions = ModelVersion.objects.filter(provider=provider)
        slots = serving_slots(versions)
        if slots:
            raise InUse(
                f"provider {provider.name!r} cannot be deleted: slot(s) {', '.join(slots)} "
                "serve one of its models; switch them to another version first"
            )
        before = provider_snapshot(provider)
        before["models"] = sorted(versions.values_list("provider_model", flat=True))
        models = {v.model for v in versions.select_related("model")}
        versions.delete()
        for model in models:
            if not model.versions.exists():
                model.delete()
        provider.delete()
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="provider.delete",
            target_type="provider",
            target=before["name"],
            before=before,
        )
