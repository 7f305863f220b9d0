"""The settings form's optional health-watch fields -> modelmgr.deploy.watch thresholds."""

from __future__ import annotations

from django.http import QueryDict

from modelmgr.deploy.watch_rules import Thresholds, thresholds_parse
from modelmgr.registry.validation import InvalidInput

FIELDS = {
    "watch-window": "window_s",
    "watch-error-rate": "max_error_rate",
    "watch-p95-ratio": "max_p95_ratio",
    "watch-min-requests": "min_requests",
}


def watch_from_form(post: QueryDict) -> Thresholds | None:
    """None when every field is empty; otherwise thresholds, checked as the API checks
    them (InvalidInput naming the field)."""
    raw: dict[str, object] = {}
    for field, key in FIELDS.items():
        text = (post.get(field) or "").strip()
        if not text:
            continue
        try:
            raw[key] = int(text) if key == "min_requests" else float(text)
        except ValueError:
            raise InvalidInput(f"health watch: {key} must be a number, got {text!r}") from None
    if not raw:
        return None
    return thresholds_parse(raw)
