"""Catalog fields of a version: parameter sizes as people write them ("0.1M", "7B") and
back, and the defaults ingest derives from what inspection read.

No registry imports: ingest's field validation uses it (registry.validation imports
ingest.fields, so importing registry.validation here would be circular).
"""

from __future__ import annotations

import re
from typing import Any

from modelmgr.exceptions import IngestRejected

_UNITS = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT]?)\s*$", re.IGNORECASE)


def parameter_size_label(count: int | None) -> str:
    """7_241_732_096 -> "7.2B", 104_192 -> "0.1M" (Ollama's style: at least one M)."""
    if not count:
        return ""
    for unit, scale in _UNITS[:-1]:
        if count >= scale or unit == "M":
            value = count / scale
            text = f"{value:.1f}".rstrip("0").rstrip(".") if value < 100 else f"{value:.0f}"
            return f"{text if text != '0' else '<0.1'}{unit}"
    return str(count)


def parse_parameter_size(text: str | int, *, field: str = "parameter size") -> int:
    """ "7B" / "0.5M" / "1500" -> a count; 422 naming ``field`` otherwise."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise IngestRejected(
            f"{field} {text!r} is not a parameter count such as 7B, 350M, 0.5B or 1500"
        )
    number, unit = float(match.group(1)), match.group(2).upper()
    scale = dict(_UNITS).get(unit, 1)
    return int(round(number * scale))


def detected_parameter_count(inspection: dict) -> int | None:
    """The weights' parameter count, when inspection could read it."""
    llm = inspection.get("llm") or {}
    count = llm.get("parameter_count") or inspection.get("parameter_count")
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None


def parameter_count_for(inspection: dict, parameter_size: str) -> int | None:
    """What the filters compare: the weights' count, else the given size ("7B")."""
    detected = detected_parameter_count(inspection)
    if detected:
        return detected
    return parse_parameter_size(parameter_size) if parameter_size else None


def with_catalog_defaults(fields: dict[str, Any], inspection: dict) -> dict[str, Any]:
    """Fill what the uploader left out from what inspection read: the parameter size
    from the count, the family from a language model's model_type; and the count."""
    filled = dict(fields)
    detected = detected_parameter_count(inspection)
    if not filled.get("parameter_size") and detected:
        filled["parameter_size"] = parameter_size_label(detected)
    model_type = (inspection.get("llm") or {}).get("model_type")
    if not filled.get("family") and model_type:
        filled["family"] = str(model_type)[:64]
    filled["parameter_count"] = parameter_count_for(inspection, filled.get("parameter_size", ""))
    return filled
