"""Render the partials the events consumer pushes: the same templates the pages use.

Each function returns HTML whose top-level elements carry the ids of page elements;
htmx's ws extension swaps them in out of band. Functions that touch the database are
sync (the consumer calls them through database_sync_to_async).
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.html import format_html

from modelmgr.views.switching import PHASES, phase_steps

# What workers and services call the phases -> the page's five phases.
_PHASE_ALIASES = {
    "validate": "validating",
    "validating": "validating",
    "validated": "loading",
    "check": "validating",
    "checking": "validating",
    "queued": "validating",
    "start": "validating",
    "started": "validating",
    "load": "loading",
    "loading": "loading",
    "loaded": "warming up",
    "warmup": "warming up",
    "warm_up": "warming up",
    "warming_up": "warming up",
    "warming up": "warming up",
    "warming": "warming up",
    "warmed": "swapping",
    "swap": "swapping",
    "swapping": "swapping",
    "swapped": "unloading",
    "commit": "swapping",
    "committed": "unloading",
    "unload": "unloading",
    "unloading": "unloading",
    "drain": "unloading",
    "draining": "unloading",
    "unloaded": "done",
    "drained": "done",
}
_DONE = {"done", "ok", "complete", "completed", "finished", "success", "succeeded", "result"}
_FAILED = {"error", "failed", "failure", "aborted", "rollback", "rolled_back"}


def _phase_name(event: dict[str, Any]) -> str:
    for key in ("phase", "stage", "step", "event", "status", "state"):
        value = event.get(key)
        if isinstance(value, str) and value:
            return value.strip().lower().replace("-", "_")
    return ""


def phase_of(event: dict[str, Any], *, previous: str) -> tuple[str, bool, bool]:
    """(page phase, failed, terminal) for one switch.progress event.

    The worker sends ``phase`` events (validating, loading, warming, swapping,
    unloading), ``slot_done`` per slot, then one ``result`` with ``ok``.
    """
    name = _phase_name(event)
    failed = event.get("ok") is False or bool(event.get("error") or event.get("errors"))
    terminal = name in _DONE or name in _FAILED
    if failed or name in _FAILED:
        return previous, True, terminal
    if name in _DONE:
        return "done", False, True
    phase = _PHASE_ALIASES.get(name) or _PHASE_ALIASES.get(name.replace("_", " "))
    if phase is None:
        return previous, False, False
    return phase, False, False


def _describe(event: dict[str, Any]) -> str:
    """One log line: the fields a person cares about, in a stable order."""
    parts = []
    for key in ("slot", "ref", "phase", "message", "detail", "error"):
        value = event.get(key)
        if key == "phase" and isinstance(value, str):
            # The stepper's words: the worker says "warming", the page "warming up".
            value = _PHASE_ALIASES.get(value.strip().lower(), value)
        if value not in (None, "") and not isinstance(value, dict | list):
            parts.append(f"{key}: {value}" if key in ("message", "detail", "error") else str(value))
    name = _phase_name(event)
    if name == "slot_done":
        parts.append("swapped in" + (" (already loaded)" if event.get("reused") else ""))
    elif name == "result":
        parts.append("switch succeeded" if event.get("ok") else "switch failed")
    errors = event.get("errors")
    if isinstance(errors, dict):
        parts.extend(f"{slot}: {why}" for slot, why in errors.items())
    for key in ("load_ms", "warmup_ms", "swap_ms", "duration_ms"):
        value = event.get(key)
        if isinstance(value, int | float) and value:
            parts.append(f"{key.removesuffix('_ms').replace('warmup', 'warm-up')} {value:.1f} ms")
    return " · ".join(dict.fromkeys(parts)) or name or "progress"


def _run_of(event: dict[str, Any]):
    """A SwitchRun as a pushed event describes it (the page's run box partials)."""
    from modelmgr.views.switching import SwitchRun

    return SwitchRun(
        id=str(event.get("switch_id") or ""),
        kind=event.get("kind", "switch"),
        assignments=event.get("assignments") or {},
        actor_label=event.get("actor", ""),
    )


def render_switch_started(event: dict[str, Any]) -> str:
    """A new box for the switch, on top of the page's runs (kept if the page has one)."""
    return render_to_string("settings.html#run-box", {"run": _run_of(event), "new": True})


def render_switch_progress(event: dict[str, Any], *, phase: str, failed: bool) -> str:
    """The switch's own stepper and one line in its own log; the outcome on its last
    event (a switch that no page started, say through the API, gets no switch.done)."""
    run_id = str(event.get("switch_id") or "")
    stepper = render_to_string(
        "partials/stepper.html",
        {"steps": phase_steps(phase, failed=failed), "oob": True, "run_id": run_id},
    )
    css = "err" if failed else ""
    line = format_html(
        '<ul id="run-{}-log" hx-swap-oob="beforeend"><li class="{}">{}</li></ul>',
        run_id,
        css,
        _describe(event),
    )
    if _phase_name(event) == "result":
        run = _run_of(event)
        run.ok = bool(event.get("ok"))
        errors = event.get("errors")
        if isinstance(errors, dict):
            run.error = "; ".join(f"{slot}: {cause}" for slot, cause in errors.items())
        run.finished_at = run.started_at
        line += render_to_string("settings.html#switch-result", {"run": run})
    return stepper + line


def render_slots_oob(user) -> str:
    from modelmgr.views.slots import slot_cards

    return render_to_string(
        "settings.html#slots", {"cards": slot_cards(user=user), "oob": True, "user": user}
    )


def render_switch_done(user, event: dict[str, Any], *, failed_phase: str) -> str:
    """The run's outcome box, its final stepper, and the slot cards as they are now."""
    run = _run_of(event)
    run.ok = bool(event.get("ok"))
    run.error = event.get("error") or ""
    run.result = event.get("result") or {}
    duration = event.get("duration_ms")
    run.finished_at = run.started_at + (duration / 1000 if duration else 0)
    steps = (
        phase_steps("done")
        if run.ok
        else phase_steps(failed_phase if failed_phase in PHASES else "validating", failed=True)
    )
    html = render_to_string(
        "partials/stepper.html", {"steps": steps, "oob": True, "run_id": run.id}
    )
    html += render_to_string("settings.html#switch-result", {"run": run, "user": user})
    return html + render_slots_oob(user)


def render_import(job: dict[str, Any], user) -> str:
    if job.get("deleted"):
        return render_to_string("imports.html#job-gone", {"job": job})
    return render_to_string("imports.html#job", {"job": job, "user": user})


def render_workers(user, workers: list[dict[str, Any]] | None = None) -> str:
    """The /status workers partial: from the statuses given (a relayed event), else
    from asking the worker now."""
    from modelmgr.views.status import status_context

    return render_to_string("status.html#workers", {**status_context(workers), "user": user})


def render_audit(user, event_id: Any) -> str:
    from modelmgr.views.audit import audit_visible_to

    if not isinstance(event_id, int):
        return ""
    event = audit_visible_to(user).filter(pk=event_id).first()
    if event is None:
        return ""
    row = render_to_string("audit.html#row", {"event": event, "user": user})
    toast = render_to_string("partials/toast.html", {"event": event})
    return row + toast


def render_drift_status(event: dict[str, Any]) -> str:
    """A slot's data drift status changed: its badge (out of band) and, for a warning or
    a drift (or the way back from one), a toast."""
    slot = str(event.get("slot") or "")
    if not slot:
        return ""
    return render_to_string(
        "partials/drift_event.html",
        {
            "slot": slot,
            "status": str(event.get("status") or ""),
            "previous": str(event.get("previous") or ""),
            "moved": [str(m) for m in event.get("moved") or []][:5],
        },
    )


def render_profile_progress(event: dict[str, Any]) -> str:
    """A profile's progress on the worker, out of band into the model page's profile card
    of that version (pages of other versions have no such element)."""
    try:
        version_id = int(event.get("version_id"))
    except (TypeError, ValueError):
        return ""
    return render_to_string(
        "partials/profile_progress.html", {"version_id": version_id, "e": event, "oob": True}
    )
