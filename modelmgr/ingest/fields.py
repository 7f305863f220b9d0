"""Validate the descriptive fields a caller may set on a new version."""

from __future__ import annotations

import json
import math
from typing import Any

from modelmgr.exceptions import IngestRejected
from modelmgr.models import Purpose
from modelmgr.registry.catalog import parse_parameter_size

_TEXT_LIMITS = {
    "description": None,
    "python_version": 32,
    "quantization": 32,
    "family": 64,
    "recommended_use": 500,
}
# Every numeric field's inclusive range: the database cannot store everything JSON can say
# (a huge min_vram_mb overflowed SQLite into a 500), and an accuracy of 2e244 is a typo, not
# a measurement. min_vram_mb's bound is PostgreSQL's integer column (about 2 PB).
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "train_accuracy": (0.0, 1.0),
    "val_accuracy": (0.0, 1.0),
    "test_accuracy": (0.0, 1.0),
    "train_loss": (0.0, 1e12),
    "min_vram_mb": (0, 2**31 - 1),
}
_NUMBERS = ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss")
ALLOWED_FIELDS = frozenset(
    {
        *_TEXT_LIMITS,
        *_NUMBERS,
        "dependencies",
        "min_vram_mb",
        "production_ready",
        "metadata",
        "parameter_size",
        "purpose",
    }
)
MAX_METADATA_BYTES = 64 * 1024


def clean_version_fields(fields: dict | None) -> dict[str, Any]:
    """Return the fields ready for ModelVersion(**fields); 422 naming any bad field.

    None values mean "not given" and are dropped.
    """
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise IngestRejected("fields must be an object")
    unknown = sorted(set(fields) - ALLOWED_FIELDS)
    if unknown:
        raise IngestRejected(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ALLOWED_FIELDS))}"
        )
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        cleaned[name] = _clean(name, value)
    return cleaned


def _check_range(name: str, value: float) -> None:
    low, high = NUMBER_RANGES[name]
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:20]}..."
        raise IngestRejected(f"field {name} must be between {low:g} and {high:g}, got {shown}")


def _clean(name: str, value: Any) -> Any:
    if name in _TEXT_LIMITS:
        if not isinstance(value, str):
            raise IngestRejected(f"field {name} must be a string")
        limit = _TEXT_LIMITS[name]
        if limit is not None and len(value) > limit:
            raise IngestRejected(f"field {name} must be at most {limit} characters")
        return value
    if name in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IngestRejected(f"field {name} must be a number")
        if not math.isfinite(value):
            raise IngestRejected(f"field {name} must be a finite number")
        _check_range(name, value)
        return float(value)
    if name == "min_vram_mb":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise IngestRejected("field min_vram_mb must be a non-negative integer")
        _check_range(name, value)
        return value
    if name == "purpose":
        if value not in Purpose.values:
            raise IngestRejected(
                f"field purpose must be one of: {', '.join(Purpose.values)}, got {value!r}"
            )
        return value
    if name == "parameter_size":
        if not isinstance(value, str) or len(value) > 16:
            raise IngestRejected("field parameter_size must be a string such as 7B or 350M")
        parse_parameter_size(value, field="field parameter_size")
        return value.strip().upper()
    if name == "production_ready":
        if not isinstance(value, bool):
            raise IngestRejected("field production_ready must be true or false")
        return value
    if name == "dependencies":
        if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
            raise IngestRejected("field dependencies must be a list of strings")
        return value
    # metadata
    if not isinstance(value, dict):
        raise IngestRejected("field metadata must be a JSON object")
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise IngestRejected(f"field metadata is not JSON-serialisable: {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise IngestRejected(f"field metadata is larger than {MAX_METADATA_BYTES} bytes")
    return value
