"""Ingest services: incoming bytes -> staged files -> an inspected, stored ModelVersion.

Every interface (API, pages, admin, ``import_model``) calls these functions. Bytes are
staged first (hashed while streaming), inspected without running untrusted code, and
only committed into the content-addressed store inside the version's transaction; a
failure at any step leaves no rows, no blobs and no staged files behind.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from modelmgr.audit import audit_record
from modelmgr.exceptions import BadPath, IngestRejected, IntegrityFailure, NotFound, VersionConflict
from modelmgr.ingest.content_types import content_type_for
from modelmgr.ingest.detect import detect_version
from modelmgr.ingest.fields import clean_version_fields
from modelmgr.ingest.incoming import IncomingFile, discard_incoming
from modelmgr.ingest.inspect_llm import quantization_label
from modelmgr.ingest.inspection import inspect_version
from modelmgr.ingest.paths import clean_relative_path
from modelmgr.ingest.sources import incoming_from_local_path, incoming_from_upload
from modelmgr.models import (
    ArtifactFile,
    AuditEvent,
    ModelVersion,
    RegisteredModel,
    Task,
    VersionStatus,
    version_validator,
)
from modelmgr.registry.catalog import with_catalog_defaults
from modelmgr.registry.gc import blobs_collect
from modelmgr.storage import content_store, store_lock, version_content_hash

__all__ = [
    "IncomingFile",
    "discard_incoming",
    "incoming_from_local_path",
    "incoming_from_upload",
    "version_create",
    "version_verify",
]
AUDITED_FILES = 100

log = logging.getLogger(__name__)


def version_create(
    *,
    model: RegisteredModel,
    actor,
    files: list[IncomingFile],
    version: str | None = None,
    framework: str | None = None,
    primary_path: str | None = None,
    fields: dict | None = None,
    source_uri: str = "",
    actor_label: str | None = None,
    infer_task: bool = True,
) -> ModelVersion:
    """Create a version of ``model`` from staged files.

    1. Validate ``version`` (or assign 1 + the highest integer version later), the
       fields, and the files (clean unique paths, none empty).
    2. Detect the framework and primary file; inspect (errors -> IngestRejected).
    3. In one transaction: lock the model row, refuse a duplicate version (409),
       create the version and its ArtifactFile rows, set the model's framework if
       empty and its task to ``llm`` when it is still ``other``, the content is a
       causal language model and ``infer_task`` (the caller named no task), audit,
       then take the store lock (held until the COMMIT, so no collector can unlink
       a blob between "it is there" and the row that references it; see
       ``storage.store_lock``) and commit the staged blobs into the store (last, so only
       the COMMIT itself can fail after them). A remote store (S3) uploads new blobs
       before the transaction, outside the lock; its commit only checks they are there.
    4. On failure delete the blobs this call newly created that nothing references.
       The staged files are removed in every case.
    """
    try:
        return _version_create(
            model=model,
            actor=actor,
            files=files,
            version=version,
            framework=framework,
            primary_path=primary_path,
            fields=fields,
            source_uri=source_uri,
            actor_label=actor_label,
            infer_task=infer_task,
        )
    finally:
        discard_incoming(files)


def _version_create(
    *,
    model,
    actor,
    files,
    version,
    framework,
    primary_path,
    fields,
    source_uri,
    actor_label,
    infer_task,
) -> ModelVersion:
    cleaned_fields = clean_version_fields(fields)
    if version is not None:
        _validate_version(model, version)
    if len(source_uri) > 2000:
        raise IngestRejected("source_uri must be at most 2000 characters")
    _validate_files(files)
    detection = detect_version(files, framework=framework, primary_path=primary_path)
    signature, inspection = inspect_version(detection, files)
    llm = inspection.get("llm")
    if llm and not cleaned_fields.get("quantization"):
        cleaned_fields["quantization"] = quantization_label(llm["quantization"])
    cleaned_fields = with_catalog_defaults(cleaned_fields, inspection)
    content_hash = version_content_hash((f.path, f.staged.sha256) for f in files)
    store = content_store()
    created_blobs: list[str] = []
    user = actor if getattr(actor, "is_authenticated", False) else None
    number = version
    try:
        # A remote store uploads new blobs now, outside the store lock (commit then
        # finds them); a local store commits with one rename under the lock.
        for incoming in files:
            if store.put_before_commit(incoming.staged):
                created_blobs.append(incoming.staged.sha256)
        with transaction.atomic():
            locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
            number = version if version is not None else _next_version(locked)
            if locked.versions.filter(version=number).exists():
                raise VersionConflict(f"model {locked.name} already has version {number}")
            created = ModelVersion.objects.create(
                model=locked,
                version=number,
                status=VersionStatus.AVAILABLE,
                framework=detection.framework,
                content_hash=content_hash,
                size_bytes=sum(f.staged.size for f in files),
                signature=signature,
                inspection=inspection,
                unsafe=detection.unsafe,
                source_uri=source_uri,
                created_by=user,
                **cleaned_fields,
            )
            ArtifactFile.objects.bulk_create(
                [
                    ArtifactFile(
                        version=created,
                        path=f.path,
                        size=f.staged.size,
                        sha256=f.staged.sha256,
                        content_type=content_type_for(f.path),
                        is_primary=f.path == detection.primary_path,
                    )
                    for f in files
                ]
            )
            after = _audit_after(created, detection.primary_path, files)
            if not locked.framework:
                locked.framework = detection.framework
                locked.save(update_fields=["framework", "updated_at"])
            if infer_task and llm and locked.task == Task.OTHER:
                # A causal LM says what it is; "other" was only the default.
                locked.task = Task.LLM
                locked.save(update_fields=["task", "updated_at"])
                after["model_task"] = Task.LLM
            audit_record(
                actor=actor,
                actor_label=actor_label,
                action="version.create",
                target_type="version",
                target=created.ref,
                after=after,
            )
            store_lock()
            for incoming in files:
                if store.commit(incoming.staged) and incoming.staged.sha256 not in created_blobs:
                    created_blobs.append(incoming.staged.sha256)
    except IntegrityError:
        # The unique constraint caught a version created concurrently with this one.
        _delete_unreferenced(created_blobs)
        raise VersionConflict(f"model {model.name} already has version {number}") from None
    except BaseException:
        _delete_unreferenced(created_blobs)
        raise
    model.framework = locked.framework
    model.task = locked.task
    return created


def _validate_version(model: RegisteredModel, version: str) -> None:
    try:
        version_validator(version)
    except ValidationError as exc:
        raise IngestRejected(f"invalid version {version!r}: {' '.join(exc.messages)}") from None
    if model.versions.filter(version=version).exists():
        raise VersionConflict(f"model {model.name} already has version {version}")


def _validate_files(files: list[IncomingFile]) -> None:
    if not files:
        raise IngestRejected("a version needs at least one file")
    seen: set[str] = set()
    for incoming in files:
        if clean_relative_path(incoming.path) != incoming.path:
            raise BadPath(f"path {incoming.path!r} is not normalised")
        if incoming.path in seen:
            raise IngestRejected(f"file {incoming.path!r} is given more than once")
        seen.add(incoming.path)
        if incoming.staged.size == 0:
            raise IngestRejected(f"file {incoming.path!r} is empty")
    for path in seen:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise IngestRejected(f"{'/'.join(parts[:depth])!r} is both a file and a folder")


def _next_version(model: RegisteredModel) -> str:
    numbers = [
        int(v)
        for v in model.versions.values_list("version", flat=True)
        if v.isascii() and v.isdigit()
    ]
    return str(max(numbers, default=0) + 1)


def _audit_after(version: ModelVersion, primary: str, files: list[IncomingFile]) -> dict:
    return {
        "version": version.ref,
        "framework": version.framework,
        "primary": primary,
        "unsafe": version.unsafe,
        "content_hash": version.content_hash,
        "size_bytes": version.size_bytes,
        "file_count": len(files),
        "files": [
            {"path": f.path, "sha256": f.staged.sha256, "size": f.staged.size}
            for f in sorted(files, key=lambda f: f.path)[:AUDITED_FILES]
        ],
    }


def _delete_unreferenced(shas: list[str]) -> None:
    """Remove the blobs a failed ingest created unless a row references them by now (an
    upload of the same bytes may have committed meanwhile): a collection under the store
    lock like any other. Its own failure is logged, not raised over the ingest's error;
    the store sweep removes what it leaves."""
    if not shas:
        return
    try:
        blobs_collect(shas)
    except Exception:  # noqa: BLE001
        log.warning("could not remove the blobs of a failed ingest: %s", shas, exc_info=True)


def version_verify(*, version: ModelVersion, actor, actor_label: str | None = None) -> dict:
    """Re-hash every file of ``version``; a mismatch puts the version in error (audited).

    A version that a previous verify put in error (the only way a version gets there)
    and whose files all match again (a blob restored from a backup) goes back to
    ``available``; an archived one just loses its error, so unarchiving restores it.

    An OSError while reading a blob (not a missing or corrupt one) propagates: nothing
    is changed or audited, and the caller reports it.
    """
    store = content_store()
    results = []
    for artifact in version.files.order_by("path"):
        try:
            store.verify(artifact.sha256, artifact.size)
            results.append({"path": artifact.path, "ok": True, "detail": ""})
        except (IntegrityFailure, NotFound) as exc:
            results.append({"path": artifact.path, "ok": False, "detail": exc.detail})
    failed = [r for r in results if not r["ok"]]
    reason = "; ".join(f"{r['path']}: {r['detail']}" for r in failed)
    with transaction.atomic():
        before = {"status": version.status}
        if failed:
            version.status = VersionStatus.ERROR
            version.error = f"integrity check failed: {reason}"
            version.save(update_fields=["status", "error", "updated_at"])
        elif version.status == VersionStatus.ERROR or version.error:
            if version.status == VersionStatus.ERROR:
                version.status = VersionStatus.AVAILABLE
            version.error = ""
            version.save(update_fields=["status", "error", "updated_at"])
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="version.verify",
            target_type="version",
            target=version.ref,
            before=before,
            after={
                "ok": not failed,
                "failed": [r["path"] for r in failed],
                "status": version.status,
            },
            outcome=AuditEvent.Outcome.ERROR if failed else AuditEvent.Outcome.OK,
            error=reason,
        )
    return {"ok": not failed, "files": results}
