"""Profiling a version: one service for the API, the model page, the admin and the CLI.

The worker does the measuring (``POST /profile``, inference.profile): on a copy of the
version loaded for it alone, one profile at a time, evicting nothing, bounded in runs
and seconds. This side checks what it can before asking, relays the worker's progress
events to the caller, and stores the result as a ``VersionProfile`` with one audit row
(``version.profile``) in the same transaction; a refused or failed profile is audited
too, and stores nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.events import events_publish
from modelmgr.exceptions import ModelmgrError, NotDeployable, WorkerUnavailable
from modelmgr.models import (
    AuditEvent,
    Framework,
    ModelVersion,
    Task,
    VersionProfile,
    VersionStatus,
)

Progress = Callable[[dict[str, Any]], None]


def profile_refusal(version: ModelVersion) -> str:
    """Why this version cannot be profiled, or "" (checked before asking the worker)."""
    if not version.is_deployable():
        return (
            f"{version.ref} cannot be loaded: it is {version.status}"
            if version.status != VersionStatus.AVAILABLE
            else f"{version.ref} is pickled and no administrator has trusted it"
        )
    if (
        version.model.task == Task.LLM
        or version.provider_id
        or version.framework in (Framework.HUGGINGFACE, "provider")
    ):
        return (
            f"{version.ref} is a language model: profiling measures tensor models "
            "(its tokens/s are in its usage statistics)"
        )
    return ""


def version_profile_run(
    *,
    version: ModelVersion,
    actor,
    actor_label: str | None = None,
    batch_sizes: list[int] | None = None,
    iterations: int | None = None,
    max_seconds: float | None = None,
    worker: str = "",
    progress: Progress | None = None,
) -> VersionProfile:
    """Profile ``version`` on a worker and store it; raises what the worker refused
    with (409 busy, 422 bad input, 507 no memory, 503 no worker), after auditing it.

    ``worker`` names the registered worker to measure on (a GPU host, say); without it,
    the up worker with the most free memory (modelmgr.deploy.fleet.worker_for_job)."""
    from modelmgr.deploy.fleet import worker_for_job

    started = time.perf_counter()
    target = f"{version.model.owner.get_username()}/{version.ref}"
    problem = profile_refusal(version)
    body = {
        "version_id": version.pk,
        "batch_sizes": batch_sizes,
        "iterations": iterations,
        "max_seconds": max_seconds,
    }
    result: dict[str, Any] | None = None
    try:
        if problem:
            raise NotDeployable(problem)
        member = worker_for_job(name=worker)
        for event in member.client.post_stream(
            "/profile", {k: v for k, v in body.items() if v is not None}, doing="profiling"
        ):
            if event.get("event") == "result":
                if not event.get("ok"):
                    raise _refused(event)
                result = event["profile"]
            else:
                _progress_publish(version.pk, event)
                if progress is not None:
                    progress(event)
        if result is None:
            raise WorkerUnavailable(
                f"the worker's profile of {version.ref} ended without a result "
                "(it may have restarted); try again"
            )
    except ModelmgrError as exc:
        with transaction.atomic():
            audit_record(
                actor=actor,
                actor_label=actor_label,
                action="version.profile",
                target_type="version",
                target=target,
                after={k: v for k, v in {**body, "worker": worker}.items() if k != "version_id"},
                outcome=AuditEvent.Outcome.ERROR,
                error=exc.detail,
                duration_ms=_ms_since(started),
            )
        raise
    with transaction.atomic():
        profile = VersionProfile.objects.create(
            version=version,
            device=result["device"],
            device_name=result.get("device_name") or "",
            # The name operators know the worker by; its process id when none registers.
            worker_id=(member.name if member.registered else result.get("worker_id")) or "",
            runtime=result.get("runtime") or "",
            provider=str(result.get("provider") or ""),
            dynamic_batch=bool(result.get("dynamic_batch")),
            load_ms=result.get("load_ms") or 0.0,
            memory_bytes=result.get("memory_bytes") or 0,
            measured_bytes=result.get("measured_bytes") or 0,
            results=result.get("results") or [],
            duration_s=result.get("duration_s") or 0.0,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="version.profile",
            target_type="version",
            target=target,
            after={
                "profile_id": profile.pk,
                "device": profile.device,
                "worker": profile.worker_id,
                "batch_sizes": [r["batch_size"] for r in profile.results],
                "p50_ms": profile.results[0]["p50_ms"] if profile.results else None,
            },
            duration_ms=_ms_since(started),
        )
    return profile


def _progress_publish(version_id: int, event: dict) -> None:
    """The worker's progress (loading, then each batch size measured) to open pages, so a
    profile started anywhere (page, API, admin, command) fills in live on the model page.
    Figures only: no name, the page of the version knows which it is."""
    keep = ("event", "done", "of", "batch_size", "p50_ms", "throughput_per_s")
    events_publish(
        "profile.progress",
        {"version_id": version_id, **{k: event[k] for k in keep if k in event}},
    )


def _refused(event: dict) -> ModelmgrError:
    error = ModelmgrError(str(event.get("detail") or "the worker could not profile it"))
    status = event.get("status")
    # A crash inside the worker is the worker's failure (502), not the caller's request.
    error.status = status if isinstance(status, int) and (status < 500 or status == 507) else 502
    return error


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def profile_latest(version: ModelVersion) -> VersionProfile | None:
    return version.profiles.order_by("-created_at", "-id").first()


def profile_as_dict(profile: VersionProfile) -> dict[str, Any]:
    return {
        "id": profile.pk,
        "version": profile.version.ref,
        "device": profile.device,
        "device_name": profile.device_name,
        "worker_id": profile.worker_id,
        "runtime": profile.runtime,
        "provider": profile.provider,
        "dynamic_batch": profile.dynamic_batch,
        "load_ms": profile.load_ms,
        "memory_bytes": profile.memory_bytes,
        "measured_bytes": profile.measured_bytes,
        "results": profile.results,
        "duration_s": profile.duration_s,
        "created_at": profile.created_at,
        "created_by": profile.created_by.get_username() if profile.created_by else None,
    }
