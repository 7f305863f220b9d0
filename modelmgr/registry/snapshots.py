"""JSON-safe pictures of registry rows for the audit trail's before/after."""

from __future__ import annotations

from typing import Any

from modelmgr.models import ModelVersion, RegisteredModel

VERSION_EDITABLE_FIELDS = (
    "description",
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "train_loss",
    "python_version",
    "dependencies",
    "min_vram_mb",
    "quantization",
    "production_ready",
    "metadata",
    "family",
    "parameter_size",
    "purpose",
    "recommended_use",
)


def model_snapshot(model: RegisteredModel) -> dict[str, Any]:
    return {
        "id": model.pk,
        "owner": model.owner.get_username(),
        "name": model.name,
        "task": model.task,
        "framework": model.framework,
        "description": model.description,
        "tags": sorted(tag.name for tag in model.tags.all()),
    }


def version_snapshot(version: ModelVersion) -> dict[str, Any]:
    picture: dict[str, Any] = {
        "id": version.pk,
        "ref": version.ref,
        "status": version.status,
        "framework": version.framework,
        "content_hash": version.content_hash,
        "size_bytes": version.size_bytes,
        "pinned": version.pinned,
        "keep_alive_s": version.keep_alive_s,
        # Derived (the weights' count, else parameter_size), so not editable itself.
        "parameter_count": version.parameter_count,
    }
    for field in VERSION_EDITABLE_FIELDS:
        picture[field] = getattr(version, field)
    return picture


def model_target(model: RegisteredModel) -> str:
    return f"{model.owner.get_username()}/{model.name}"


def version_target(version: ModelVersion) -> str:
    return f"{version.model.owner.get_username()}/{version.ref}"
