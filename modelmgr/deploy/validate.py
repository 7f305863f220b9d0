"""Validate a stored version on demand (the model page's and the admin's "validate").

A load test through the worker when it is reachable: the worker loads the version and
warms it up with a dummy input built from its signature, exactly as a switch would,
then lets it go again unless a slot serves it. Without a worker, the version is
re-inspected instead: every file re-hashed, then the framework detected and the
signature read again from the stored bytes (no code run). Either way one audit row
(``version.validate``) records the outcome.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.exceptions import ModelmgrError, WorkerUnavailable
from modelmgr.models import AuditEvent, ModelVersion, VersionStatus
from modelmgr.storage import content_store, stage_stream


def _load_test(version: ModelVersion, slot: str) -> dict[str, Any]:
    """Load + warm up in a worker (one serving ``slot`` when given: where the version
    would run); raises WorkerUnavailable when there is none."""
    from modelmgr.deploy.fleet import worker_for_job

    member = worker_for_job(slot=slot)
    client = member.client
    loaded = client.call("POST", "/load", {"version_id": version.pk})
    if not loaded.get("slots") and not loaded.get("pinned"):
        # Nothing serves it: give the memory back (a switch would load it again).
        try:
            client.call("POST", "/unload", {"version_id": version.pk})
        except ModelmgrError:
            pass
    note = f" ({loaded['warmup_note']})" if loaded.get("warmup_note") else ""
    where = loaded.get("provider") or loaded.get("runtime") or "the worker"
    if member.registered:
        where += f" of worker {member.name}"
    return {
        "ok": True,
        "method": "load test",
        "worker": member.name,
        "detail": (
            f"{version.ref} loaded in {loaded.get('load_ms', 0):.1f} ms and answered "
            f"a dummy input in {loaded.get('warmup_ms', 0):.1f} ms on {where}{note}."
        ),
        "checks": [],
    }


def _integrity_failed(version: ModelVersion, verified: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": False,
        "method": "re-inspection",
        "checks": verified["files"],
        "detail": f"{version.ref} failed the integrity check; it is now in error.",
    }


def _reinspect(version: ModelVersion, actor, actor_label: str | None, why: str) -> dict[str, Any]:
    """Re-hash every file, then detect and inspect the stored bytes again.

    ``why`` says why it was not load-tested instead, as the start of a sentence.
    """
    from modelmgr.ingest.detect import detect_version
    from modelmgr.ingest.incoming import IncomingFile, discard_incoming
    from modelmgr.ingest.inspection import inspect_version
    from modelmgr.ingest.services import version_verify

    verified = version_verify(version=version, actor=actor, actor_label=actor_label)
    if not verified["ok"]:
        return _integrity_failed(version, verified)
    store = content_store()
    copies: list[IncomingFile] = []
    try:
        for artifact in version.files.all():
            copies.append(
                IncomingFile(
                    path=artifact.path, staged=stage_stream(store.iter_chunks(artifact.sha256))
                )
            )
        primary = next((f.path for f in version.files.all() if f.is_primary), None)
        detection = detect_version(
            copies, framework=version.framework or None, primary_path=primary
        )
        signature, _ = inspect_version(detection, copies)
    except ModelmgrError as exc:
        return {
            "ok": False,
            "method": "re-inspection",
            "checks": verified["files"],
            "detail": f"{version.ref} could not be inspected again: {exc.detail}",
        }
    finally:
        discard_incoming(copies)
    same = signature == version.signature
    return {
        "ok": same,
        "method": "re-inspection",
        "checks": verified["files"],
        "detail": (
            f"{why}: {version.ref} was re-inspected instead; its "
            f"files are intact and its signature reads the same."
            if same
            else f"{version.ref}: the stored bytes now read as a different "
            f"signature than the one recorded at upload."
        ),
    }


def _not_loaded_because(version: ModelVersion) -> str:
    if version.status != VersionStatus.AVAILABLE:
        return f"Not loaded in the worker because it is {version.status}"
    return "Not loaded in the worker because it is pickled and not trusted"


def version_validate(
    *, version: ModelVersion, actor, actor_label: str | None = None, slot: str = ""
) -> dict[str, Any]:
    """Validate ``version``: ``{"ok", "method", "detail", "checks"}``; audited.

    1. A version in error is verified first: when its files match again it is
       available again (ingest.services.version_verify) and goes on to step 2.
    2. A deployable version is load-tested in a worker (load, warm up, unload): the
       one with the most free memory, among those serving ``slot`` when given.
    3. When the worker cannot be reached, or the version may not be loaded (not
       available, or pickled and untrusted), it is re-inspected instead, and the
       detail says which of the two it was.
    4. A worker that refuses the load (corrupt bytes, runtime error) is a failure.
    """
    from modelmgr.deploy.client import WorkerRefused
    from modelmgr.ingest.services import version_verify

    started = time.perf_counter()
    outcome: dict[str, Any]
    verified = None
    if version.status == VersionStatus.ERROR:
        verified = version_verify(version=version, actor=actor, actor_label=actor_label)
    if verified is not None and not verified["ok"]:
        outcome = _integrity_failed(version, verified)
    elif version.is_deployable():
        try:
            outcome = _load_test(version, slot)
        except WorkerUnavailable:
            outcome = _reinspect(version, actor, actor_label, "No worker to load it in")
        except WorkerRefused as exc:
            outcome = {
                "ok": False,
                "method": "load test",
                "checks": [],
                "detail": f"the worker could not load {version.ref}: {exc.detail}",
            }
    else:
        outcome = _reinspect(version, actor, actor_label, _not_loaded_because(version))
    with transaction.atomic():
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="version.validate",
            target_type="version",
            target=f"{version.model.owner.get_username()}/{version.ref}",
            after={
                "method": outcome["method"],
                "ok": outcome["ok"],
                **({"worker": outcome["worker"]} if outcome.get("worker") else {}),
            },
            outcome=AuditEvent.Outcome.OK if outcome["ok"] else AuditEvent.Outcome.ERROR,
            error="" if outcome["ok"] else outcome["detail"],
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
    return outcome
