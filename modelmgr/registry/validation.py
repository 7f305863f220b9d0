"""Checks on registry input shared by every interface (API, pages, admin, commands)."""

from __future__ import annotations

import re
from typing import Any

from modelmgr.exceptions import ModelmgrError
from modelmgr.ingest.fields import clean_version_fields as clean_given
from modelmgr.keep_alive import BadKeepAlive, keep_alive_seconds
from modelmgr.models import Framework, Task

SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
TAG_MAX = 64
NAME_MAX = 100


class InvalidInput(ModelmgrError):
    status = 422


def clean_model_name(name: str) -> str:
    if not isinstance(name, str) or not SLUG_RE.match(name) or len(name) > NAME_MAX:
        raise InvalidInput(
            f"model name {name!r} must be a slug of 1-{NAME_MAX} letters, digits, '-' or '_'"
        )
    return name


def clean_task(task: str) -> str:
    if task not in Task.values:
        raise InvalidInput(f"task {task!r} is not one of: {', '.join(Task.values)}")
    return task


def clean_framework(framework: str) -> str:
    if framework and framework not in Framework.values:
        raise InvalidInput(f"framework {framework!r} is not one of: {', '.join(Framework.values)}")
    return framework


def clean_tag_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """Lower-cased, de-duplicated slugs in first-seen order."""
    cleaned: list[str] = []
    for raw in names:
        name = raw.strip().lower() if isinstance(raw, str) else raw
        if not isinstance(name, str) or not SLUG_RE.match(name) or len(name) > TAG_MAX:
            raise InvalidInput(
                f"tag {raw!r} must be a slug of 1-{TAG_MAX} letters, digits, '-' or '_'"
            )
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


# What a field becomes when a caller clears it (sends null).
_CLEARED: dict[str, Any] = {
    "description": "",
    "train_accuracy": None,
    "val_accuracy": None,
    "test_accuracy": None,
    "train_loss": None,
    "python_version": "",
    "dependencies": [],
    "min_vram_mb": None,
    "quantization": "",
    "production_ready": False,
    "metadata": {},
    "family": "",
    "parameter_size": "",
    "purpose": "",
    "recommended_use": "",
}
# Edited under its Ollama name, stored in seconds (modelmgr.keep_alive).
VERSION_FIELDS = frozenset(_CLEARED) | {"keep_alive"}


def clean_version_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate edits to a version's metadata; ``None`` clears a field.

    Values are checked by the same rules as at upload (modelmgr.ingest.fields), so a
    version cannot be edited into a state it could not have been created in.
    """
    unknown = sorted(set(fields) - VERSION_FIELDS)
    if unknown:
        raise InvalidInput(
            f"unknown version field(s): {', '.join(unknown)}; "
            f"editable: {', '.join(sorted(VERSION_FIELDS))}"
        )
    fields = dict(fields)
    keep_alive = fields.pop("keep_alive", None) if "keep_alive" in fields else ...
    cleaned = clean_given({key: value for key, value in fields.items() if value is not None})
    if keep_alive is not ...:
        try:
            cleaned["keep_alive_s"] = (
                None if keep_alive is None else keep_alive_seconds(keep_alive, field="keep_alive")
            )
        except BadKeepAlive as exc:
            raise InvalidInput(exc.detail) from None
    for key, value in fields.items():
        if value is None:
            cleaned[key] = _CLEARED[key]
    return cleaned
