"""Values as people read them, never as Python reprs.

Inspection results, audit before/after and metadata are JSON trees; printed raw they
show `{'ai.onnx': 17}`, `[]`, `False` and `None`. These filters render them the way
the rest of the page reads: "ai.onnx 17", "—", "no", "unknown".
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

NOTHING = "—"


def human_value(value) -> str:
    """One value as a short line: scalars plainly, flat mappings as "key value" pairs,
    flat lists comma-separated, anything deeper as compact JSON."""
    if value is None or value == "" or value == [] or value == {}:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        if all(_is_scalar(v) for v in value.values()):
            # ONNX opsets {"ai.onnx": 17} read as "ai.onnx 17"; an empty domain is the default one.
            return ", ".join(f"{k or 'ai.onnx'} {human_value(v)}" for k, v in value.items())
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, list | tuple):
        if all(_is_scalar(v) for v in value):
            return ", ".join(human_value(v) for v in value)
        if all(isinstance(v, dict) and all(map(_is_scalar, v.values())) for v in value):
            # A list of records (an audit row's files): one "key value, ..." per record.
            return "; ".join(human_value(v) for v in value)
        return json.dumps(value, default=str)
    return str(value)


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


@register.filter
def human(value) -> str:
    return human_value(value)


@register.filter
def dtype(value) -> str:
    """A tensor's dtype; one the file does not record is "unknown", not "None"."""
    return "unknown" if value in (None, "") else str(value)


@register.filter
def changes(event) -> list[str]:
    """An audit event's before/after as "field: old → new" lines (only what changed;
    a creation lists its fields, a removal what was there)."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    if not isinstance(event.before, dict) and event.before not in (None, {}):
        before = {"value": event.before}
    if not isinstance(event.after, dict) and event.after not in (None, {}):
        after = {"value": event.after}
    lines = []
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if key in before and key in after:
            if old != new:
                lines.append(f"{key}: {human_value(old)} → {human_value(new)}")
        elif key in after:
            lines.append(f"{key}: {human_value(new)}")
        else:
            lines.append(f"{key}: {human_value(old)} → {NOTHING}")
    return lines


@register.filter
def ago(value) -> str:
    """ "just now" under a minute (timesince alone says "0 minutes ago")."""
    if not isinstance(value, datetime):
        return NOTHING
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def uptime(value) -> str:
    """How long since `value`, "under a minute" instead of "0 minutes"."""
    if not isinstance(value, datetime):
        return NOTHING
    if timezone.now() - value < timedelta(minutes=1):
        return "under a minute"
    return timesince(value)


@register.filter
def params(value) -> str:
    """A parameter count as "0.1M (104,192)"; unknown -> "—"."""
    from modelmgr.registry.catalog import parameter_size_label

    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return NOTHING
    return f"{parameter_size_label(value)} ({value:,})"
