"""Discovery: ask a provider for its models and record them in the registry.

Each model the provider lists becomes a version that is provided, not stored: task
``llm``, framework ``provider``, no files, ``provider`` and ``provider_model`` set. The
registry name is ``<provider>-<model>`` (characters other than letters, digits, '-'
and '_' become '-'), the version ``remote``; it is switched to like any version.

1. Check the URL again (the SSRF rules may have changed) and ask for the list.
2. A provider that is down, slow, refuses the key or answers nonsense: its error is
   recorded on the provider and raised (502/504 naming the cause); nothing else changes.
3. In one transaction: a listed model already recorded (same provider, same name) is
   kept and its details refreshed; a new one is created; a recorded model the provider
   no longer lists stays (a slot may serve it) and is reported as missing.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from modelmgr.audit import audit_record
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import (
    AuditEvent,
    Framework,
    ModelVersion,
    Provider,
    RegisteredModel,
    Task,
    VersionStatus,
)
from modelmgr.providers.protocol import RemoteModel
from modelmgr.providers.services import require_admin
from modelmgr.providers.transport import fetch_models, provider_target

VERSION = "remote"
NAME_MAX = 100


def registry_name(provider: Provider, remote: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", remote).strip("-_") or "model"
    return f"{provider.name}-{slug}"[:NAME_MAX].rstrip("-_")


def _details(remote: RemoteModel) -> dict[str, Any]:
    details: dict[str, Any] = {"provider_listed": True}
    if remote.context_length:
        details["context_length"] = remote.context_length
    if remote.size_bytes:
        details["provider_size_bytes"] = remote.size_bytes
    if remote.digest:
        details["provider_digest"] = remote.digest
    return details


def _record(provider: Provider, remote: RemoteModel, actor) -> tuple[ModelVersion | None, str]:
    """(version, "created" | "existing" | why it was skipped)."""
    version = (
        ModelVersion.objects.select_related("model")
        .filter(provider=provider, provider_model=remote.name)
        .first()
    )
    if version is not None:
        version.metadata = {**(version.metadata or {}), **_details(remote)}
        for field in ("family", "parameter_size", "quantization"):
            value = getattr(remote, field)
            if value and not getattr(version, field):
                setattr(version, field, value[: ModelVersion._meta.get_field(field).max_length])
        version.save()
        return version, "existing"
    name = registry_name(provider, remote.name)
    model, _ = RegisteredModel.objects.get_or_create(
        owner=provider.owner,
        name=name,
        defaults={
            "task": Task.LLM,
            "framework": Framework.PROVIDER,
            "description": f"{remote.name} served by provider {provider.name}",
        },
    )
    if model.versions.filter(version=VERSION).exists():
        return None, f"the registry name {name}@{VERSION} is taken by another version"
    version = ModelVersion.objects.create(
        model=model,
        version=VERSION,
        status=VersionStatus.AVAILABLE,
        framework=Framework.PROVIDER,
        description=f"{remote.name} on {provider.base_url} ({provider.kind})",
        provider=provider,
        provider_model=remote.name,
        source_uri=f"{provider.base_url}#{remote.name}"[:2000],
        family=remote.family[:64],
        parameter_size=remote.parameter_size[:16],
        quantization=remote.quantization[:32],
        metadata=_details(remote),
        created_by=provider.owner,
    )
    return version, "created"


def provider_discover(*, provider: Provider, actor, actor_label: str | None = None) -> dict:
    """Discover the provider's models (see the module docstring); returns
    ``{"provider", "models": [{"name", "ref", "outcome"}], "created", "missing"}``."""
    require_admin(actor, "discover a provider's models")
    try:
        target = provider_target(
            name=provider.name,
            kind=provider.kind,
            base_url=provider.base_url,
            api_key=provider.api_key,
        )
        remotes = fetch_models(target)
    except ModelmgrError as exc:
        with transaction.atomic():
            Provider.objects.filter(pk=provider.pk).update(discovery_error=exc.detail)
            audit_record(
                actor=actor,
                actor_label=actor_label,
                action="provider.discover",
                target_type="provider",
                target=provider.name,
                outcome=AuditEvent.Outcome.ERROR,
                error=exc.detail,
            )
        raise
    rows = []
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
        seen = set()
        for remote in remotes:
            if remote.name in seen:
                continue
            seen.add(remote.name)
            version, outcome = _record(provider, remote, actor)
            rows.append(
                {"name": remote.name, "ref": version.ref if version else None, "outcome": outcome}
            )
        missing = []
        for version in ModelVersion.objects.select_related("model").filter(provider=provider):
            if version.provider_model not in seen:
                version.metadata = {**(version.metadata or {}), "provider_listed": False}
                version.save(update_fields=["metadata", "updated_at"])
                missing.append(version.ref)
        provider.discovered_at = timezone.now()
        provider.discovery_error = ""
        provider.save(update_fields=["discovered_at", "discovery_error", "updated_at"])
        created = [row["ref"] for row in rows if row["outcome"] == "created"]
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="provider.discover",
            target_type="provider",
            target=provider.name,
            after={"created": created, "missing": sorted(missing), "listed": len(seen)},
        )
    return {
        "provider": provider.name,
        "models": rows,
        "created": created,
        "missing": sorted(missing),
    }
