"""The validation report: may this version go into this slot, and what would break?

One service for the API (``GET /api/v1/versions/{ref}/report?slot=``), the model page
and the settings page. Each check is ``{"name", "status", "message", "details"}`` with
status ``ok``, ``warning``, ``fail`` or ``skipped`` (not run: the load test unless
asked for). Nothing changes, except that the optional load test loads the version in
the worker and lets it go again, audited like the "validate" action (it is one).
"""

from __future__ import annotations

from typing import Any

from modelmgr.deploy.contract import effective_signature, version_fits_slot
from modelmgr.deploy.deps import dependency_check
from modelmgr.deploy.fleet import Member, slot_members
from modelmgr.deploy.gate import gate_checks, gate_failures
from modelmgr.deploy.preview import member_fit
from modelmgr.deploy.sigdiff import signature_diff
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import AuditEvent, ModelVersion, Slot, VersionStatus
from modelmgr.registry.memory_estimate import MB, estimate_memory


def size_text(nbytes: float) -> str:
    """MB, or KB for what is under one (tiny models read 0.0 MB otherwise)."""
    return f"{nbytes / MB:.1f} MB" if nbytes >= MB else f"{nbytes / 1024:.1f} KB"


OK, WARNING, FAIL, SKIPPED = "ok", "warning", "fail", "skipped"
_RANK = {SKIPPED: 0, OK: 0, WARNING: 1, FAIL: 2}


def _check(name: str, status: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"name": name, "status": status, "message": message, "details": details}


def _format_check(version: ModelVersion) -> dict[str, Any]:
    last = (
        AuditEvent.objects.filter(
            action__in=("version.verify", "version.validate"),
            target__in=(version.ref, f"{version.model.owner.get_username()}/{version.ref}"),
        )
        .order_by("-created_at", "-id")
        .first()
    )
    verified = (
        f"; last {last.action.split('.')[1]}: {last.outcome} at {last.created_at:%Y-%m-%d %H:%M}"
        if last
        else "; never re-verified since upload"
    )
    details = {
        "status": version.status,
        "framework": version.framework,
        "content_hash": version.content_hash,
        "files": version.files.count(),
        "unsafe": version.unsafe,
        "trusted": version.trusted,
        "last_check": (
            {"action": last.action, "outcome": last.outcome, "at": last.created_at.isoformat()}
            if last
            else None
        ),
    }
    if version.status == VersionStatus.ERROR:
        return _check("format", FAIL, f"{version.ref} is in error: {version.error}", details)
    if version.status == VersionStatus.ARCHIVED:
        return _check("format", FAIL, f"{version.ref} is archived", details)
    if version.status != VersionStatus.AVAILABLE:
        return _check("format", WARNING, f"{version.ref} is still {version.status}", details)
    if version.unsafe and not version.trusted:
        return _check(
            "format",
            FAIL,
            f"{version.ref} is a pickled artifact no administrator has trusted",
            details,
        )
    signature = effective_signature(version)
    shape = f"{len(signature['inputs'])} input(s), {len(signature['outputs'])} output(s)"
    if not signature["inputs"] and not signature["outputs"]:
        return _check(
            "format",
            WARNING,
            f"{version.framework or 'unknown format'}, inspected, but no signature was read"
            + verified,
            details,
        )
    return _check(
        "format",
        OK,
        f"{version.framework or 'unknown format'}, available, {details['files']} file(s), "
        f"signature {shape}{verified}",
        details,
    )


def _contract_check(version: ModelVersion, slot: Slot) -> dict[str, Any]:
    misfits = version_fits_slot(version, slot)
    if misfits:
        return _check("contract", FAIL, "; ".join(misfits), misfits)
    if slot.contract:
        return _check("contract", OK, f"fits slot {slot.name}'s task and contract")
    return _check("contract", OK, f"fits slot {slot.name}'s task (the slot has no contract)")


def _signature_check(version: ModelVersion, slot: Slot) -> dict[str, Any]:
    current = slot.active_version
    if current is None:
        return _check("signature", OK, f"slot {slot.name} serves nothing now: no caller to break")
    if current.pk == version.pk:
        return _check("signature", OK, f"slot {slot.name} serves {version.ref} already")
    changes = signature_diff(effective_signature(current), effective_signature(version))
    details = [change.as_dict() for change in changes]
    breaking = [c for c in changes if c.breaking]
    if breaking:
        return _check(
            "signature",
            FAIL,
            f"breaking against {current.ref}: " + "; ".join(c.message for c in breaking),
            details,
        )
    if changes:
        return _check(
            "signature",
            WARNING,
            f"compatible with {current.ref}, with changes: "
            + "; ".join(c.message for c in changes),
            details,
        )
    return _check("signature", OK, f"same signature as {current.ref}", details)


def _worker_facts(member: Member) -> tuple[dict | None, dict | None, str]:
    """(status, environment, why not) from one worker."""
    try:
        client = member.client
        return client.status(), client.call("GET", "/environment"), ""
    except ModelmgrError as exc:
        return None, None, exc.detail


def _hardware_check(
    version: ModelVersion, member: Member | None, status: dict | None, why: str
) -> dict[str, Any]:
    estimate = estimate_memory(version)
    details: dict[str, Any] = {
        "min_vram_mb": version.min_vram_mb,
        "estimate_bytes": estimate.total_bytes,
        "estimate_how": estimate.how,
    }
    said = f"registry estimate {size_text(estimate.total_bytes)} ({estimate.how})"
    if member is None or status is None:
        return _check("hardware", WARNING, f"{said}; the worker could not be asked: {why}", details)
    fit, error = member_fit(member, [version.pk])
    if fit is None:
        why = f"{said}; the worker could not be asked: {error}"
        return _check("hardware", WARNING, why, details)
    found = (fit.get("versions") or [{}])[0]
    memory = fit.get("memory") or {}
    details.update(
        device=status.get("device"),
        free_bytes=memory.get("free_bytes"),
        budget_bytes=memory.get("budget_bytes"),
        needed_bytes=found.get("needed_bytes"),
        evictions=fit.get("evictions") or [],
    )
    where = (
        f"{size_text(memory.get('free_bytes') or 0)} free of "
        f"{size_text(memory.get('budget_bytes') or 0)} on {status.get('device')}"
    )
    notes = []
    if version.min_vram_mb and str(status.get("device", "")).startswith("cpu"):
        notes.append(
            f"it declares {version.min_vram_mb} MB of VRAM and the worker has no GPU "
            "(checked against its RAM budget instead)"
        )
    if found.get("loaded"):
        return _check("hardware", OK, f"{version.ref} is loaded in the worker already", details)
    if not fit.get("fits"):
        return _check("hardware", FAIL, f"{found.get('detail')} ({said})", details)
    evicted = [e["ref"] for e in details["evictions"]]
    message = f"{found.get('detail')} of {where}; {said}"
    if evicted:
        notes.append("loading it would evict " + ", ".join(evicted))
    if notes:
        return _check("hardware", WARNING, message + "; " + "; ".join(notes), details)
    return _check("hardware", OK, message, details)


def _gate_check(version: ModelVersion, slot: Slot) -> dict[str, Any]:
    checks = gate_checks(version, slot)
    failures = gate_failures(version, slot)
    details = {
        "quality_gate": slot.quality_gate,
        "production": slot.production,
        "production_ready": version.production_ready,
        "thresholds": [
            {"metric": c.metric, "rule": c.rule, "value": c.value, "ok": c.ok} for c in checks
        ],
    }
    if failures:
        return _check(
            "quality_gate",
            FAIL,
            "; ".join(failures) + " (a switch is refused unless forced)",
            details,
        )
    if not checks and not slot.production:
        return _check("quality_gate", OK, f"slot {slot.name} has no quality gate", details)
    passed = [c.message for c in checks]
    if slot.production:
        passed.append(f"{version.ref} is production-ready")
    return _check("quality_gate", OK, "; ".join(passed), details)


def _load_check(
    version: ModelVersion, slot: Slot, load: bool, actor, actor_label
) -> dict[str, Any]:
    from modelmgr.deploy.validate import version_validate

    if not load:
        return _check(
            "load_test", SKIPPED, "not run (ask with load=1: it loads the version in the worker)"
        )
    outcome = version_validate(
        version=version, actor=actor, actor_label=actor_label, slot=slot.name
    )
    if outcome["ok"] and outcome["method"] == "load test":
        return _check("load_test", OK, outcome["detail"], outcome)
    if outcome["ok"]:
        return _check("load_test", WARNING, outcome["detail"], outcome)
    return _check("load_test", FAIL, outcome["detail"], outcome)


def _nobody_up(slot: Slot) -> str:
    return f"no inference worker is up in group {slot.worker_group!r}, which serves {slot.name}"


def _fleet_checks(
    version: ModelVersion, slot: Slot
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The dependency and hardware checks on every up worker that serves ``slot`` (the
    version must run on each of them after a switch), each the worst worker's, and
    who was asked: ``[{name, reachable, error}]``."""
    members = slot_members(slot.name)
    if not members:
        why = _nobody_up(slot)
        return (
            dependency_check(version, None, None, why),
            _hardware_check(version, None, None, why),
            [],
        )
    dependencies, hardware, workers = [], [], []
    for member in members:
        status, environment, why = _worker_facts(member)
        dependencies.append((member, dependency_check(version, status, environment, why)))
        hardware.append((member, _hardware_check(version, member, status, why)))
        workers.append({"name": member.name, "reachable": status is not None, "error": why})
    return _worst_of(dependencies), _worst_of(hardware), workers


def _worst_of(per_worker: list[tuple[Member, dict[str, Any]]]) -> dict[str, Any]:
    """One check from each worker's: the worst one, naming its worker when there are
    several, with every worker's outcome in ``details["workers"]``."""
    member, worst = max(per_worker, key=lambda pair: _RANK[pair[1]["status"]])
    every = [
        {"name": m.name, "status": check["status"], "message": check["message"]}
        for m, check in per_worker
    ]
    details = {**(worst["details"] or {}), "workers": every}
    if len(per_worker) == 1:
        return {**worst, "details": details}
    others = ", ".join(f"{w['name']} {w['status']}" for w in every if w["name"] != member.name)
    message = f"worker {member.name}: {worst['message']} (also asked: {others})"
    return {**worst, "message": message, "details": details}


def version_report(
    *,
    version: ModelVersion,
    slot: Slot,
    load: bool = False,
    actor=None,
    actor_label: str | None = None,
) -> dict[str, Any]:
    """Every check of ``version`` against ``slot``, then the overall status (the worst
    one), whether the signature change is breaking, and whether a switch would be
    refused (format, contract) or need ``force`` (quality gate)."""
    dependencies, hardware, workers = _fleet_checks(version, slot)
    checks = [
        _format_check(version),
        _contract_check(version, slot),
        _signature_check(version, slot),
        dependencies,
        hardware,
        _gate_check(version, slot),
        _load_check(version, slot, load, actor, actor_label),
    ]
    by_name = {c["name"]: c for c in checks}
    worst = max(checks, key=lambda c: _RANK[c["status"]])["status"]
    return {
        "version": version.ref,
        "slot": slot.name,
        "serving": slot.active_version.ref if slot.active_version else None,
        "status": OK if worst == SKIPPED else worst,
        "breaking": by_name["signature"]["status"] == FAIL,
        "switch": (
            "refused"
            if FAIL in (by_name["format"]["status"], by_name["contract"]["status"])
            else "needs force"
            if by_name["quality_gate"]["status"] == FAIL
            else "allowed"
        ),
        "worker": {
            "reachable": bool(workers) and all(w["reachable"] for w in workers),
            "error": next((w["error"] for w in workers if w["error"]), "")
            if workers
            else _nobody_up(slot),
            "workers": workers,
        },
        "checks": checks,
    }
