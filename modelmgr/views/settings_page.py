"""/settings: which version serves each slot; switch one or several at once, roll back.

Switches and rollbacks run in a thread (see views.switching); the page answers at once
with the "switching" panel, and the phases and the outcome arrive over /ws/events/.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from modelmgr.models import Slot
from modelmgr.views.common import HtmxHttpRequest, render_page
from modelmgr.views.slots import slot_cards
from modelmgr.views.switching import switch_run_get, switch_run_latest, switch_run_start

SELECT_PREFIX = "slot-"


def _actor_label(request) -> str:
    from modelmgr.api.auth import request_actor_label

    return request_actor_label(request)


def settings_context(user) -> dict:
    return {"cards": slot_cards(user=user), "run": switch_run_latest()}


@login_required
@require_GET
def settings_view(request: HtmxHttpRequest):
    # The refresh button asks for the slot cards only.
    return render_page(request, "settings.html", settings_context(request.user), partial="slots")


@login_required
@require_GET
def settings_run(request: HtmxHttpRequest, run_id: str):
    """The outcome box of a run, polled while it runs (a fallback for a missed event)."""
    run = switch_run_get(run_id)
    if run is None:
        return render_page(request, "settings.html", {"gone": True}, partial="switch-result")
    if run.running:
        return render_page(request, "settings.html", {"run": run}, partial="switch-result")
    context = {"run": run, "cards": slot_cards(user=request.user)}
    return render_page(request, "settings.html", context, partial="run-finished")


def _respond(request: HtmxHttpRequest, *, run=None, error: str = ""):
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("settings")
    return render_page(
        request, "settings.html", {"run": run, "form_error": error}, partial="switch-status"
    )


@login_required
@require_POST
def settings_apply(request: HtmxHttpRequest):
    """Switch every slot whose dropdown names a version other than the active one."""
    from modelmgr.deploy.services import slots_switch

    active = {
        slot.name: slot.active_version
        for slot in Slot.objects.select_related("active_version__model__owner")
    }
    assignments: dict[str, str] = {}
    for key, value in request.POST.items():
        if not key.startswith(SELECT_PREFIX) or not value:
            continue
        slot_name = key[len(SELECT_PREFIX) :]
        if slot_name not in active:
            return _respond(request, error=f"there is no slot named {slot_name!r}")
        current = active[slot_name]
        if current is None or value != _qualified_ref(current):
            assignments[slot_name] = value
    if not assignments:
        return _respond(
            request,
            error="Nothing to apply: every slot already serves the version selected for it.",
        )
    user, label = request.user, _actor_label(request)
    run = switch_run_start(
        kind="switch",
        assignments=assignments,
        actor_label=label,
        call=lambda: slots_switch(assignments=assignments, actor=user, actor_label=label),
    )
    return _respond(request, run=run)


@login_required
@require_POST
def settings_rollback(request: HtmxHttpRequest, slot_name: str):
    from modelmgr.deploy.services import slot_rollback

    slot = get_object_or_404(Slot.objects.select_related("previous_version__model"), name=slot_name)
    if slot.previous_version_id is None:
        return _respond(request, error=f"slot {slot_name} has no previous version to roll back to")
    user, label = request.user, _actor_label(request)
    target = slot.previous_version.ref
    run = switch_run_start(
        kind="rollback",
        assignments={slot_name: target},
        actor_label=label,
        call=lambda: slot_rollback(slot_name=slot_name, actor=user, actor_label=label),
    )
    return _respond(request, run=run)


def _qualified_ref(version) -> str:
    return f"{version.model.owner.get_username()}/{version.ref}"
