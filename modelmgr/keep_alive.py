"""Ollama's ``keep_alive`` durations: how long an idle language model stays loaded.

Accepted forms, as Ollama takes them: a number of seconds (``300``, ``2.5``), a Go-style
duration string (``"5m"``, ``"30s"``, ``"1h"``, ``"1h30m"``, ``"500ms"``), or a numeric
string (``"300"``). A negative value means "forever" (kept until unloaded by other
means); ``0`` means "unload as soon as the request is done".
"""

from __future__ import annotations

import math
import re

from modelmgr.exceptions import ModelmgrError

FOREVER = -1.0
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_MAX_S = 10 * 365 * 86400.0  # longer than this is "forever" in all but name


class BadKeepAlive(ModelmgrError):
    status = 400


def keep_alive_seconds(value: object, *, field: str = "keep_alive") -> float:
    """Seconds (``FOREVER`` = -1 for any negative value), or BadKeepAlive naming the form."""
    if isinstance(value, bool) or value is None:
        raise BadKeepAlive(_usage(field, value))
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse(value.strip(), field)
    else:
        raise BadKeepAlive(_usage(field, value))
    if not math.isfinite(seconds):
        raise BadKeepAlive(_usage(field, value))
    if seconds < 0:
        return FOREVER
    return min(seconds, _MAX_S)


def _parse(text: str, field: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    try:
        return sign * float(body)
    except ValueError:
        pass
    parts = _PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise BadKeepAlive(_usage(field, text))
    return sign * sum(float(number) * _UNITS[unit] for number, unit in parts)


def _usage(field: str, value: object) -> str:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return (
        f"{field} {shown} is not a duration: use seconds (300), a duration such as "
        '"5m", "30s", "1h" or "1h30m", 0 to unload after the request, or a negative '
        "value to keep the model loaded"
    )


def keep_alive_label(seconds: float | None) -> str:
    """``5m``, ``30s``, ``1h30m``, ``forever``: how the pages and the API show it."""
    if seconds is None:
        return ""
    if seconds < 0:
        return "forever"
    if seconds == 0:
        return "0s (unload after each request)"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"
