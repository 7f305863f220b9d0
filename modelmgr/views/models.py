"""/models: search and filter the registry, keyset pages with a cursor trail for "previous"."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.views.decorators.http import require_GET

from modelmgr.exceptions import ModelmgrError
from modelmgr.models import Framework, Purpose, Tag, Task
from modelmgr.registry.selectors import model_list
from modelmgr.views.common import (
    HtmxHttpRequest,
    cursor_trail,
    error_text,
    page_links,
    parse_bool,
    parse_int,
    render_page,
)
from modelmgr.views.model_rows import model_rows

PAGE_SIZE = 20
FILTER_KEYS = (
    "q",
    "task",
    "framework",
    "tag",
    "production_ready",
    "max_vram_mb",
    "family",
    "purpose",
    "max_params",
)


def _filters(request: HtmxHttpRequest) -> dict[str, str]:
    return {key: request.GET.get(key, "").strip() for key in FILTER_KEYS}


@login_required
@require_GET
def model_list_page(request: HtmxHttpRequest):
    filters = _filters(request)
    cursor, trail = cursor_trail(request)
    error = ""
    items: list = []
    next_cursor = None
    try:
        page = model_list(
            user=request.user,
            q=filters["q"] or None,
            task=filters["task"] or None,
            framework=filters["framework"] or None,
            tag=filters["tag"] or None,
            production_ready=True if parse_bool(filters["production_ready"]) else None,
            max_vram_mb=parse_int(filters["max_vram_mb"], name="max_vram_mb"),
            family=filters["family"] or None,
            purpose=filters["purpose"] or None,
            max_params=filters["max_params"] or None,
            cursor=cursor or None,
            limit=PAGE_SIZE,
        )
        items, next_cursor = page.items, page.next_cursor
    except ModelmgrError as exc:
        error = error_text(exc)
    context = {
        "filters": filters,
        "model_rows": model_rows(items, viewer=request.user),
        "error": error,
        "tasks": Task.values,
        "purposes": Purpose.values,
        "frameworks": Framework.choices,
        "tags": Tag.objects.filter(models__isnull=False).distinct().values_list("name", flat=True),
        **page_links(filters, cursor, trail, next_cursor),
    }
    return render_page(request, "models.html", context, partial="results")
