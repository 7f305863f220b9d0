"""Parameter sizes as people write them ("0.1M", "7B", "1.5B") and back."""

from __future__ import annotations

import re

from modelmgr.registry.validation import InvalidInput

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
    """"7B" / "0.5M" / "1500" -> a count; 422 naming ``field`` otherwise."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise InvalidInput(
            f"{field} {text!r} is not a parameter count such as 7B, 350M, 0.5B or 1500"
        )
    number, unit = float(match.group(1)), match.group(2).upper()
    scale = dict(_UNITS).get(unit, 1)
    return int(round(number * scale))
