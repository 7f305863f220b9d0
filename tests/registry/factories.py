"""Registry rows with real stored bytes, made without going through ingest.

Selector and service tests need versions in given states (available, archived, error)
quickly; the API tests upload real models through ingest instead.
"""

from __future__ import annotations

import io
from pathlib import Path

from modelmgr.models import ArtifactFile, ModelVersion, RegisteredModel, Tag
from modelmgr.storage import content_store, stage_file


def make_model(
    owner,
    name: str = "detector-a",
    *,
    task: str = "detector",
    framework: str = "",
    description: str = "",
    tags: tuple[str, ...] = (),
) -> RegisteredModel:
    model = RegisteredModel.objects.create(
        owner=owner, name=name, task=task, framework=framework, description=description
    )
    for tag in tags:
        model.tags.add(Tag.objects.get_or_create(name=tag)[0])
    return model


def store_bytes(data: bytes) -> tuple[str, int]:
    staged = stage_file(io.BytesIO(data))
    content_store().commit(staged)
    return staged.sha256, staged.size


def make_version(
    model: RegisteredModel,
    version: str = "1",
    *,
    status: str = "available",
    files: dict[str, bytes] | None = None,
    primary: str | None = None,
    **fields,
) -> ModelVersion:
    """A version whose files are really in the artifact store (default: one small blob)."""
    files = files if files is not None else {"model.bin": f"{model.name}@{version}".encode()}
    row = ModelVersion.objects.create(
        model=model, version=version, status=status, created_by=model.owner, **fields
    )
    total = 0
    primary = primary or next(iter(files), None)
    for path, data in files.items():
        sha256, size = store_bytes(data)
        total += size
        ArtifactFile.objects.create(
            version=row, path=path, size=size, sha256=sha256, is_primary=(path == primary)
        )
    row.size_bytes = total
    row.save(update_fields=["size_bytes"])
    return row


def onnx_bytes(model_files, tmp_path: Path, **kwargs) -> bytes:
    return model_files.onnx(tmp_path / "built" / "model.onnx", **kwargs).read_bytes()
