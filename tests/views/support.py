"""Deployable rows for page tests: tiny real ONNX models, ingested, and a slot."""

from __future__ import annotations

from pathlib import Path

from modelmgr.ingest.services import incoming_from_local_path, version_create
from modelmgr.models import ModelVersion, RegisteredModel, Slot

CONTRACT = {"inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]}


def ingested(
    owner,
    model_files,
    tmp_path: Path,
    *,
    name: str = "clf",
    version: str = "1",
    task: str = "classifier",
    seed: int = 0,
    **build,
) -> ModelVersion:
    """A real ONNX MLP (x[batch, in_features] -> y) through the real ingest path."""
    model, _ = RegisteredModel.objects.get_or_create(
        owner=owner, name=name, defaults={"task": task}
    )
    path = model_files.onnx(tmp_path / f"{name}-{version}" / "model.onnx", seed=seed, **build)
    return version_create(
        model=model, actor=owner, files=incoming_from_local_path(path), version=version
    )


def serving_slot(
    name: str,
    version: ModelVersion | None,
    *,
    task: str = "classifier",
    contract: dict | None = None,
) -> Slot:
    return Slot.objects.create(
        name=name,
        task=task,
        active_version=version,
        contract=CONTRACT if contract is None else contract,
    )
