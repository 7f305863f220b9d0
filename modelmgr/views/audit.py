"""/audit: every change, filterable by actor, action, model and slot, keyset-paginated."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.views.decorators.http import require_GET

from modelmgr.exceptions import ModelmgrError
from modelmgr.models import AuditEvent, Slot
from modelmgr.registry.pagination import keyset_page
from modelmgr.views.common import (
    HtmxHttpRequest,
    cursor_trail,
    error_text,
    page_links,
    render_page,
)

PAGE_SIZE = 50
FILTER_KEYS = ("actor", "action", "model", "slot", "outcome")


def audit_visible_to(user) -> QuerySet:
    """Staff see every row; others see their own actions and what touches their models
    or the (shared) slots."""
    events = AuditEvent.objects.all()
    if user.is_staff:
        return events
    username = user.get_username()
    return events.filter(
        Q(actor=user) | Q(target__startswith=f"{username}/") | Q(target_type__in=("slot", "switch"))
    )


def audit_filtered(
    *, user, actor: str = "", action: str = "", model: str = "", slot: str = "", outcome: str = ""
) -> QuerySet:
    events = audit_visible_to(user)
    if actor:
        events = events.filter(Q(actor_label__icontains=actor) | Q(actor__username=actor))
    if action:
        events = events.filter(action=action)
    if model:
        # Targets read "owner/name" or "owner/name@version"; a bare name matches any owner.
        events = events.filter(
            Q(target=model)
            | Q(target__endswith=f"/{model}")
            | Q(target__contains=f"/{model}@")
            | Q(target__startswith=f"{model}@")
            | Q(after__ref__startswith=f"{model}@")
        )
    if slot:
        # Switch rows name every slot they changed: "detector,policy".
        events = events.filter(
            Q(target=slot)
            | Q(target__startswith=f"{slot},")
            | Q(target__endswith=f",{slot}")
            | Q(target__contains=f",{slot},"),
            target_type="slot",
        )
    if outcome:
        events = events.filter(outcome=outcome)
    return events.select_related("actor")


@login_required
@require_GET
def audit_page(request: HtmxHttpRequest):
    filters = {key: request.GET.get(key, "").strip() for key in FILTER_KEYS}
    cursor, trail = cursor_trail(request)
    error = ""
    events: list = []
    next_cursor = None
    try:
        page = keyset_page(
            audit_filtered(user=request.user, **filters), cursor=cursor or None, limit=PAGE_SIZE
        )
        events, next_cursor = page.items, page.next_cursor
    except ModelmgrError as exc:
        error = error_text(exc)
    visible = audit_visible_to(request.user)
    context = {
        "filters": filters,
        "events": events,
        "error": error,
        "actions": visible.order_by("action").values_list("action", flat=True).distinct(),
        "slots": Slot.objects.values_list("name", flat=True),
        # New rows are pushed live only into the unfiltered first page.
        "live": not any(filters.values()) and not cursor,
        **page_links(filters, cursor, trail, next_cursor),
    }
    return render_page(request, "audit.html", context, partial="results")
