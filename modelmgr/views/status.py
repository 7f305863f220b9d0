"""/status: the workers, their memory against the budget, and the models they hold."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET

from modelmgr.keep_alive import keep_alive_label
from modelmgr.views.common import HtmxHttpRequest, render_page


def _with_times(status: dict[str, Any]) -> dict[str, Any]:
    """ISO strings -> datetimes, so the template can say "3 minutes ago"."""
    for model in status.get("models") or []:
        for key in ("loaded_at", "last_used"):
            if isinstance(model.get(key), str):
                model[key] = parse_datetime(model[key])
    status["language_models"] = []
    for model in status.get("models") or []:
        llm = model.get("language_model")
        if isinstance(llm, dict):
            if isinstance(llm.get("expires_at"), str):
                llm["expires_at"] = parse_datetime(llm["expires_at"])
            llm["keep_alive_label"] = keep_alive_label(llm.get("keep_alive_s"))
            status["language_models"].append(model)
    for slot in (status.get("slots") or {}).values():
        if isinstance(slot.get("since"), str):
            slot["since"] = parse_datetime(slot["since"])
    if isinstance(status.get("started_at"), str):
        status["started_at"] = parse_datetime(status["started_at"])
    status["providers"] = sorted(
        {m.get("provider") for m in status.get("models") or [] if m.get("provider")}
    )
    return status


def drift_rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Per slot one worker watches: its data drift status, what moved, and the model
    page of the version it serves (where the histograms are)."""
    rows = []
    for slot, drift in sorted((status.get("data_drift") or {}).items()):
        if not isinstance(drift, dict):
            continue
        ref = ((status.get("slots") or {}).get(slot) or {}).get("ref") or ""
        name, _, version = ref.partition("@")
        rows.append(
            {
                "slot": slot,
                "status": drift.get("status", ""),
                "moved": drift.get("moved") or [],
                "ref": ref,
                "url": f"/models/{name}?version={version}#drift" if name else "",
            }
        )
    return rows


def fleet_drift_rows(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per slot over every worker that answered: the worst worker's row (as the
    slot's drift report and its live ``drift.status`` events are), naming that worker
    and listing each worker's status when there are several."""
    from modelmgr.deploy.drift import worst_worker

    by_slot: dict[str, list[dict[str, Any]]] = {}
    for worker in workers:
        if worker["status"] is None:
            continue
        name = worker["name"] or worker["status"].get("worker_id") or worker["label"]
        for row in drift_rows(worker["status"]):
            by_slot.setdefault(row["slot"], []).append({**row, "worker": name})
    rows = []
    for slot in sorted(by_slot):
        seen = by_slot[slot]
        _, worst = worst_worker([(r["worker"], r) for r in seen])
        each = [{"name": r["worker"], "status": r["status"]} for r in seen]
        rows.append({**worst, "workers": each if len(seen) > 1 else []})
    return rows


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
                "name": worker.get("name", ""),
                "group": worker.get("group", ""),
                "serve_url": worker.get("serve_url", ""),
                "registered": worker.get("registered", False),
                "up": worker.get("up", True),
                "error": worker.get("error", ""),
                "status": _with_times(status) if status else None,
            }
        )
    return {"workers": workers, "drift_rows": fleet_drift_rows(workers)}


@login_required
@require_GET
def status_page(request: HtmxHttpRequest):
    return render_page(request, "status.html", status_context(), partial="workers")
