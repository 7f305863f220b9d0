"""/status: the workers, their memory against the budget, and the models they hold."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET

from modelmgr.views.common import HtmxHttpRequest, render_page


def _with_times(status: dict[str, Any]) -> dict[str, Any]:
    """ISO strings -> datetimes, so the template can say "3 minutes ago"."""
    for model in status.get("models") or []:
        for key in ("loaded_at", "last_used"):
            if isinstance(model.get(key), str):
                model[key] = parse_datetime(model[key])
    for slot in (status.get("slots") or {}).values():
        if isinstance(slot.get("since"), str):
            slot["since"] = parse_datetime(slot["since"])
    if isinstance(status.get("started_at"), str):
        status["started_at"] = parse_datetime(status["started_at"])
    status["providers"] = sorted(
        {m.get("provider") for m in status.get("models") or [] if m.get("provider")}
    )
    return status


def status_context(statuses: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One entry per worker: its status, or the reason it cannot be reached.

    ``statuses`` are workers_status()-shaped entries already at hand (the relayed
    worker.state event); without them the worker is asked now.
    """
    from modelmgr.deploy.workers import workers_status

    workers = []
    for worker in workers_status() if statuses is None else statuses:
        status = dict(worker["status"]) if worker.get("status") else None
        workers.append(
            {
                "label": worker.get("url", ""),
                "error": worker.get("error", ""),
                "status": _with_times(status) if status else None,
            }
        )
    return {"workers": workers}


@login_required
@require_GET
def status_page(request: HtmxHttpRequest):
    return render_page(request, "status.html", status_context(), partial="workers")
