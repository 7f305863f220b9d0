"""Small display filters for the pages: shapes, durations, percentages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def shape(dims) -> str:
    """[None, 3, "h"] -> "[?, 3, h]"; a shape nobody recorded -> "unknown"."""
    if not isinstance(dims, list | tuple):
        return "unknown" if dims is None else str(dims)
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


@register.filter
def ms(value) -> str:
    if value is None or value == "":
        return "–"
    value = float(value)
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.2f} ms"


@register.filter
def tokens_per_s(value) -> str:
    if value is None or value == "":
        return "–"
    value = float(value)
    return f"{value:.0f} tok/s" if value >= 100 else f"{value:.1f} tok/s"


@register.filter
def percent(value, total) -> int:
    """Whole percent of value/total, clamped to 0..100 (0 when the total is unknown)."""
    try:
        total = float(total)
        if total <= 0:
            return 0
        return max(0, min(100, round(float(value) * 100 / total)))
    except (TypeError, ValueError):
        return 0


@register.filter
def seconds(value) -> str:
    """A duration in seconds as "1 h 02 min", "3 min 05 s" or "12 s"."""
    if value is None or value == "":
        return "–"
    total = int(round(float(value)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@register.filter
def accuracy(value) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f} %" if value <= 1 else f"{value:g}"


@register.filter
def get(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def default_steps(steps):
    """The switch stepper's (title, state) pairs; every phase pending when none given."""
    if steps:
        return steps
    from modelmgr.views.switching import phase_steps

    return phase_steps("")
