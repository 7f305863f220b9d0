"""/settings: a slot's canary and shadow from its card, and its arms' live figures.

The card's buttons post here; each calls the one service (modelmgr.deploy.canary) and
answers like the other card forms (the status panel), plus the slot cards out of band
so the card shows what now serves. The figures are a partial the card polls.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from modelmgr.deploy.arms import slot_arms
from modelmgr.deploy.canary import arms_change
from modelmgr.exceptions import ModelmgrError, NotFound
from modelmgr.views.common import HtmxHttpRequest
from modelmgr.views.settings_page import _actor_label, _respond
from modelmgr.views.slots import slot_cards

ACTIONS = {"canary": "slot.canary", "shadow": "slot.shadow", "promote": "slot.promote"}
ACTIONS["abort"] = "slot.abort"
SAID = {
    "slot.canary": "Canary on {slot}: {canary} answers {share}% of the requests",
    "slot.shadow": "Shadow on {slot}: {shadow} gets a copy of every request",
    "slot.promote": "Promoted on {slot}: {active} serves every request",
    "slot.abort": "Canary and shadow removed from {slot}: {active} serves every request",
}


def _share(raw: str | None):
    """The form's percent as a share; what does not parse goes on as typed, for the
    service to refuse by name."""
    try:
        return float(raw) / 100
    except (TypeError, ValueError):
        return raw


@login_required
@require_GET
def settings_arms(request: HtmxHttpRequest, slot_name: str):
    try:
        arms = slot_arms(slot_name)
    except NotFound as exc:
        raise Http404(exc.detail) from None
    return render(request, "partials/arms.html", {"arms": arms})


@login_required
@require_POST
def settings_canary(request: HtmxHttpRequest, slot_name: str, action: str):
    if action not in ACTIONS:
        raise Http404(f"no such action {action!r}")
    post = request.POST
    try:
        result = arms_change(
            slot=slot_name,
            action=ACTIONS[action],
            actor=request.user,
            actor_label=_actor_label(request),
            ref=post.get(f"{action}-version-{slot_name}") or None,
            share=_share(post.get(f"canary-share-{slot_name}")),
        )
    except ModelmgrError as exc:
        return _respond(request, error=exc.detail)
    after = result["after"]
    said = SAID[ACTIONS[action]].format(
        slot=slot_name, share=round(after["canary_share"] * 100, 2), **after
    )
    response = _respond(request, ok=said)
    if request.htmx and isinstance(response, HttpResponse):
        cards = slot_cards(user=request.user)
        context = {"cards": cards, "oob": True, "request": request}
        slots = render_to_string("settings.html#slots", context, request=request)
        response.content += slots.encode()
    return response
