"""Typed contract of the registry API (models, versions, files)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field

from modelmgr.models import Framework, ModelVersion, Purpose, RegisteredModel, Task
from modelmgr.registry.selectors import model_tags
from modelmgr.registry.validation import InvalidInput

TASKS = ", ".join(Task.values)
FRAMEWORKS = ", ".join(Framework.values)
PURPOSES = ", ".join(Purpose.values)


class ModelIn(Schema):
    name: str = Field(description="slug, unique per owner", examples=["yolo-v8-small"])
    task: str = Field("other", description=f"one of: {TASKS}")
    framework: str = Field("", description=f"empty or one of: {FRAMEWORKS}")
    description: str = ""
    tags: list[str] = Field(default_factory=list)


class ModelPatch(Schema):
    task: str | None = Field(None, description=f"one of: {TASKS}")
    framework: str | None = None
    description: str | None = None
    tags: list[str] | None = Field(None, description="replaces the tags; [] clears them")


class ModelOut(Schema):
    id: int
    name: str
    owner: str
    task: str
    framework: str
    description: str
    tags: list[str]
    latest_version: str | None = Field(None, description="newest available version")
    version_count: int = 0
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_owner(obj: RegisteredModel) -> str:
        return obj.owner.get_username()

    @staticmethod
    def resolve_tags(obj: RegisteredModel) -> list[str]:
        return [tag.name for tag in model_tags(obj)]

    @staticmethod
    def resolve_latest_version(obj: RegisteredModel) -> str | None:
        return obj.latest_version or None


class ModelPage(Schema):
    items: list[ModelOut]
    next_cursor: str | None


class FileOut(Schema):
    path: str
    size: int
    sha256: str
    content_type: str
    is_primary: bool


class VersionOut(Schema):
    id: int
    model: str
    owner: str
    version: str
    ref: str
    status: str
    framework: str
    description: str
    content_hash: str
    size_bytes: int
    signature: dict[str, Any]
    inspection: dict[str, Any]
    train_accuracy: float | None
    val_accuracy: float | None
    test_accuracy: float | None
    train_loss: float | None
    python_version: str
    dependencies: list[str]
    min_vram_mb: int | None
    quantization: str
    family: str = Field(description="catalog: the model family, e.g. llama")
    parameter_size: str = Field(description='catalog: e.g. "7B"; from the weights if not given')
    parameter_count: int | None = Field(
        description="the weights' parameter count, else parsed from parameter_size"
    )
    purpose: str = Field(description=f"catalog: empty or one of: {PURPOSES}")
    recommended_use: str
    source_uri: str
    production_ready: bool
    unsafe: bool
    trusted: bool
    pinned: bool = Field(
        description="kept loaded in the worker even when no slot serves it; never evicted"
    )
    keep_alive_s: float | None = Field(
        None,
        description="language models: idle seconds before an unserved, unpinned copy is "
        "unloaded (negative = forever; null = MODELMGR_LLM_KEEP_ALIVE)",
    )
    error: str
    metadata: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    primary_path: str | None
    files: list[FileOut]
    provider: str | None = Field(
        None, description="provided, not stored: the provider that runs it (no files)"
    )
    provider_model: str = Field("", description="the provider's own name for it")

    @staticmethod
    def resolve_provider(obj: ModelVersion) -> str | None:
        return obj.provider.name if obj.provider_id else None

    @staticmethod
    def resolve_model(obj: ModelVersion) -> str:
        return obj.model.name

    @staticmethod
    def resolve_owner(obj: ModelVersion) -> str:
        return obj.model.owner.get_username()

    @staticmethod
    def resolve_created_by(obj: ModelVersion) -> str | None:
        return obj.created_by.get_username() if obj.created_by else None

    @staticmethod
    def resolve_files(obj: ModelVersion) -> list:
        return list(obj.files.all())

    @staticmethod
    def resolve_primary_path(obj: ModelVersion) -> str | None:
        return next((f.path for f in obj.files.all() if f.is_primary), None)


class VersionPage(Schema):
    items: list[VersionOut]
    next_cursor: str | None


class VersionPatch(Schema):
    description: str | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    train_loss: float | None = None
    python_version: str | None = None
    dependencies: list[str] | None = None
    min_vram_mb: int | None = Field(None, ge=0)
    quantization: str | None = None
    family: str | None = None
    parameter_size: str | None = Field(None, description='e.g. "7B", "350M"')
    purpose: str | None = Field(None, description=f"one of: {PURPOSES}")
    recommended_use: str | None = None
    production_ready: bool | None = None
    metadata: dict[str, Any] | None = None
    keep_alive: str | float | None = Field(
        None,
        description='language models: Ollama\'s keep_alive ("5m", "30s", "1h", seconds; '
        "negative = forever; null = the MODELMGR_LLM_KEEP_ALIVE default)",
    )
    status: Literal["archived", "available"] | None = Field(
        None, description="'archived' to archive, 'available' to unarchive"
    )
    pinned: bool | None = Field(
        None,
        description="true: the worker keeps this version loaded even when no slot serves "
        "it, and never evicts it (only available versions; 409 otherwise); false: it may "
        "be evicted again",
    )


class FileCheck(Schema):
    path: str
    ok: bool
    detail: str = ""


class VerifyOut(Schema):
    ok: bool
    files: list[FileCheck]


def _split_list(key: str, raw: str) -> list[str]:
    """A JSON list of strings, or a comma-separated list."""
    text = raw.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{key} is not valid JSON: {exc}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{key} must be a JSON list of strings")
        return [v.strip() for v in value if v.strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


class VersionFields(Schema):
    """What an upload may say about the new version besides its bytes."""

    framework: str | None = Field(None, description=f"default: detected; one of: {FRAMEWORKS}")
    archive: bool | None = Field(None, description="unpack a zip (default: by file name)")
    primary_path: str | None = None
    owner: str | None = Field(None, description="staff: upload to another user's model")
    task: str | None = Field(None, description=f"for a new model; one of: {TASKS}")
    tags: str | None = Field(None, description="comma-separated or a JSON list")
    description: str | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    train_loss: float | None = None
    python_version: str | None = None
    dependencies: str | None = Field(None, description="comma-separated or a JSON list")
    min_vram_mb: int | None = Field(None, ge=0)
    quantization: str | None = Field(None, description="default: from quantization_config")
    family: str | None = Field(None, description="default: a language model's model_type")
    parameter_size: str | None = Field(None, description='e.g. "7B"; default: from the weights')
    purpose: str | None = Field(None, description=f"one of: {PURPOSES}")
    recommended_use: str | None = None
    production_ready: bool | None = None
    metadata: str | None = Field(None, description="a JSON object")

    def tag_list(self) -> list[str] | None:
        return _split_list("tags", self.tags) if self.tags else None

    def fields(self) -> dict[str, Any]:
        """The version fields for ingest; raises InvalidInput (422) on malformed JSON."""
        fields: dict[str, Any] = {}
        for key in (
            "description",
            "train_accuracy",
            "val_accuracy",
            "test_accuracy",
            "train_loss",
            "python_version",
            "min_vram_mb",
            "quantization",
            "family",
            "parameter_size",
            "purpose",
            "recommended_use",
            "production_ready",
        ):
            value = getattr(self, key)
            if value is not None:
                fields[key] = value
        if self.dependencies:
            fields["dependencies"] = _split_list("dependencies", self.dependencies)
        if self.metadata:
            try:
                metadata = json.loads(self.metadata)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"metadata is not valid JSON: {exc}") from exc
            if not isinstance(metadata, dict):
                raise InvalidInput(f"metadata must be a JSON object, got {type(metadata).__name__}")
            fields["metadata"] = metadata
        return fields


class VersionUploadForm(VersionFields):
    """Form fields sent with the ``file`` part of a multipart upload."""

    version: str | None = Field(None, description="default: the next free number")
    path: str | None = Field(None, description="path of the file inside the version")


class VersionFileQuery(VersionFields):
    """Query parameters of a raw-body upload (``PUT .../versions/{version}/files/{path}``)."""

    sha256: str | None = Field(
        None,
        description="the file's sha256 (hex); a body that hashes otherwise is refused "
        "(400) and nothing is kept. Or send RFC 9530 Content-Digest: sha-256=:<base64>:",
    )
