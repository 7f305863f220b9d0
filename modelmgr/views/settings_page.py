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
from modelmgr.views.switching import switch_run_get, switch_run_start, switch_runs_recent

SELECT_PREFIX = "slot-"
# The version the page showed for a slot: what a switch of it expects to replace.
SEEN_PREFIX = "seen-"


def _actor_label(request) -> str:
    from modelmgr.api.auth import request_actor_label

    return request_actor_label(request)


def settings_context(user) -> dict:
    return {"cards": slot_cards(user=user), "runs": switch_runs_recent(), "poll": True}


def changed_assignments(post) -> tuple[dict[str, str], dict[str, str | None], dict]:
    """(slot -> ref, slot -> the version the page showed, slot -> active version) of the
    slots the form changed; the Apply and the fit preview read the form alike."""
    active = {
        slot.name: slot.active_version
        for slot in Slot.objects.select_related("active_version__model__owner")
    }
    assignments: dict[str, str] = {}
    expected: dict[str, str | None] = {}
    for key, value in post.items():
        if not key.startswith(SELECT_PREFIX) or not value:
            continue
        slot_name = key[len(SELECT_PREFIX) :]
        seen_key = f"{SEEN_PREFIX}{slot_name}"
        if seen_key in post:
            seen = post[seen_key]
            if value == seen:
                continue  # "keep": left as the page showed it
            expected[slot_name] = seen or None
        elif slot_name in active:
            # A form without what it showed (an old page, a script): skip a "keep".
            current = active[slot_name]
            if current is not None and value == _qualified_ref(current):
                continue
        assignments[slot_name] = value
    return assignments, expected, active


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
        context = {"gone": True, "run_id": run_id}
        return render_page(request, "settings.html", context, partial="switch-result")
    if run.running:
        context = {"run": run, "poll": True}
        return render_page(request, "settings.html", context, partial="switch-result")
    context = {"run": run, "cards": slot_cards(user=request.user)}
    return render_page(request, "settings.html", context, partial="run-finished")


def _respond(request: HtmxHttpRequest, *, run=None, error: str = "", ok: str = ""):
    if not request.htmx:
        if error:
            messages.error(request, error)
        if ok:
            messages.success(request, ok)
        return redirect("settings")
    context = {"run": run, "form_error": error, "form_ok": ok, "poll": True}
    return render_page(request, "settings.html", context, partial="apply-answer")


@login_required
@require_POST
def settings_apply(request: HtmxHttpRequest):
    """Switch the slots the operator changed, each expected to serve what the page showed.

    A select left on "keep" (its value equals the ``seen-<slot>`` field: the version the
    page showed) is not part of the switch at all, so a stale page cannot revert another
    operator's switch of it; a changed slot carries what the page showed as ``expected``
    and is refused (409, naming who changed it) when it serves something else now.
    """
    from modelmgr.exceptions import ModelmgrError

    assignments, expected, active = changed_assignments(request.POST)
    if not assignments:
        return _respond(
            request,
            error="Nothing to apply: every slot already serves the version selected for it.",
        )
    unknown = sorted(set(assignments) - set(active))
    if unknown:
        return _respond(request, error=f"there is no slot named {unknown[0]!r}")
    user, label = request.user, _actor_label(request)
    # Past the slots' quality gates (modelmgr.deploy.gate); audited as forced.
    force = request.POST.get("force") in ("1", "on", "true")
    from modelmgr.deploy.watch_switch import slots_switch_watched
    from modelmgr.views.watch_form import watch_from_form

    try:
        watch = watch_from_form(request.POST)
    except ModelmgrError as exc:
        return _respond(request, error=exc.detail)
    run = switch_run_start(
        kind="switch",
        assignments=assignments,
        actor_label=label,
        call=lambda switch_id: slots_switch_watched(
            assignments=assignments,
            watch=watch,
            actor=user,
            actor_label=label,
            expected=expected or None,
            switch_id=switch_id,
            force=force,
        )[0],
    )
    return _respond(request, run=run)


@login_required
@require_POST
def settings_rollback(request: HtmxHttpRequest, slot_name: str):
    """Roll back to the version the button named (``rollback-to``) or be refused."""
    from modelmgr.deploy.services import slot_rollback

    slot = get_object_or_404(
        Slot.objects.select_related("previous_version__model__owner"), name=slot_name
    )
    to = request.POST.get("rollback-to") or None
    seen_key = f"{SEEN_PREFIX}{slot_name}"
    expected = request.POST[seen_key] if seen_key in request.POST else None
    if to is None and slot.previous_version_id is None:
        return _respond(request, error=f"slot {slot_name} has no previous version to roll back to")
    user, label = request.user, _actor_label(request)
    target = to or _qualified_ref(slot.previous_version)
    run = switch_run_start(
        kind="rollback",
        assignments={slot_name: target},
        actor_label=label,
        call=lambda switch_id: slot_rollback(
            slot_name=slot_name,
            actor=user,
            actor_label=label,
            to=target,
            expected=expected,
            switch_id=switch_id,
        ),
    )
    return _respond(request, run=run)


def _qualified_ref(version) -> str:
    return f"{version.model.owner.get_username()}/{version.ref}"


def _form_int(value: str | None):
    """An integer field of the form; what is not one goes to the service as it is,
    which refuses it naming the setting."""
    value = (value or "").strip()
    try:
        return int(value)
    except ValueError:
        return value


@login_required
@require_POST
def settings_batching(request: HtmxHttpRequest, slot_name: str):
    """Set the slot's dynamic batching from its card (modelmgr.deploy.batching)."""
    from modelmgr.deploy.batching import slot_batching_set
    from modelmgr.exceptions import ModelmgrError

    post = request.POST
    preferred_text = post.get(f"batch-preferred-{slot_name}", "")
    preferred = [_form_int(p) for p in preferred_text.replace(",", " ").split()]
    try:
        slot = slot_batching_set(
            slot_name=slot_name,
            actor=request.user,
            actor_label=_actor_label(request),
            max_batch_size=_form_int(post.get(f"batch-size-{slot_name}")),
            max_queue_delay_us=_form_int(post.get(f"batch-delay-{slot_name}")),
            preferred_batch_sizes=preferred,
        )
    except ModelmgrError as exc:
        return _respond(request, error=exc.detail)
    if slot.max_batch_size > 1:
        said = (
            f"Batching on {slot_name}: up to {slot.max_batch_size}, waiting at most "
            f"{slot.max_queue_delay_us} µs"
        )
    else:
        said = f"Batching off on {slot_name}"
    return _respond(request, ok=said)


@login_required
@require_POST
def settings_llm_limits(request: HtmxHttpRequest, slot_name: str):
    """Set a language model slot's generation limits from its card
    (modelmgr.deploy.llm_limits); an empty field is the MODELMGR_LLM_* default."""
    from django.conf import settings

    from modelmgr.deploy.llm_limits import slot_llm_limits_set
    from modelmgr.exceptions import ModelmgrError

    post = request.POST
    parallel = _form_int(post.get(f"llm-parallel-{slot_name}"))
    queue = _form_int(post.get(f"llm-queue-{slot_name}"))
    try:
        slot = slot_llm_limits_set(
            slot_name=slot_name,
            actor=request.user,
            actor_label=_actor_label(request),
            num_parallel=0 if parallel == "" else parallel,
            max_queue=None if queue == "" else queue,
        )
    except ModelmgrError as exc:
        return _respond(request, error=exc.detail)
    parallel = slot.llm_num_parallel or settings.MODELMGR_LLM_NUM_PARALLEL
    queue = settings.MODELMGR_LLM_MAX_QUEUE if slot.llm_max_queue is None else slot.llm_max_queue
    return _respond(
        request,
        ok=f"Generation limits on {slot_name}: {parallel} at once, {queue} may wait",
    )
