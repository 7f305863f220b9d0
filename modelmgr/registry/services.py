"""Changes to registered models and versions; each one is audited in its own transaction.

Uploading (creating) a version is ingest's job (modelmgr.ingest.services.version_create);
modelmgr.registry.uploads combines it with creating the model on first upload.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q

from modelmgr.audit import audit_record
from modelmgr.exceptions import InUse, ModelNameTaken, VersionConflict
from modelmgr.models import (
    ArtifactFile,
    ModelVersion,
    RegisteredModel,
    Slot,
    Tag,
    VersionStatus,
)
from modelmgr.registry.catalog import parameter_count_for
from modelmgr.registry.gc import blobs_collect_on_commit
from modelmgr.registry.pins import pin_after_update, worker_nudge_on_commit
from modelmgr.registry.snapshots import (
    model_snapshot,
    model_target,
    version_snapshot,
    version_target,
)
from modelmgr.registry.switch_guard import outside_switches
from modelmgr.registry.validation import (
    InvalidInput,
    clean_framework,
    clean_model_name,
    clean_tag_names,
    clean_task,
    clean_version_fields,
)


def serving_slots(versions) -> list[str]:
    """Names of the slots whose active, canary or shadow version is among ``versions``."""
    slots = Slot.objects.filter(
        Q(active_version__in=versions)
        | Q(canary_version__in=versions)
        | Q(shadow_version__in=versions)
    )
    return sorted(set(slots.values_list("name", flat=True)))


def _tags_apply(model: RegisteredModel, names: list[str]) -> None:
    tags = []
    for name in clean_tag_names(names):
        tag, _ = Tag.objects.get_or_create(name=name)
        tags.append(tag)
    model.tags.set(tags)


def model_create(
    *,
    owner,
    name: str,
    task: str = "other",
    framework: str = "",
    description: str = "",
    tags: list[str] | None = None,
    actor=None,
    actor_label: str | None = None,
) -> RegisteredModel:
    name = clean_model_name(name)
    task = clean_task(task)
    framework = clean_framework(framework)
    actor = actor or owner
    with transaction.atomic():
        if RegisteredModel.objects.filter(owner=owner, name=name).exists():
            raise ModelNameTaken(f"{owner.get_username()} already has a model named {name!r}")
        try:
            # A savepoint, so that losing a race to a concurrent create leaves the
            # outer transaction usable for the 409.
            with transaction.atomic():
                model = RegisteredModel.objects.create(
                    owner=owner,
                    name=name,
                    task=task,
                    framework=framework,
                    description=description,
                )
        except IntegrityError as exc:
            raise ModelNameTaken(
                f"{owner.get_username()} already has a model named {name!r}"
            ) from exc
        if tags:
            _tags_apply(model, tags)
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="model.create",
            target_type="model",
            target=model_target(model),
            after=model_snapshot(model),
        )
    return model


def model_update(
    *,
    model: RegisteredModel,
    actor,
    task: str | None = None,
    framework: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    actor_label: str | None = None,
) -> RegisteredModel:
    """Change what is given; ``None`` leaves a field as it is, ``tags=[]`` clears them."""
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        before = model_snapshot(model)
        if task is not None:
            model.task = clean_task(task)
        if framework is not None:
            model.framework = clean_framework(framework)
        if description is not None:
            model.description = description
        model.save()
        if tags is not None:
            _tags_apply(model, tags)
        after = model_snapshot(model)
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="model.update",
            target_type="model",
            target=model_target(model),
            before=before,
            after=after,
        )
    return model


def model_tags_set(
    *, model: RegisteredModel, actor, names: list[str], actor_label: str | None = None
) -> RegisteredModel:
    """Replace the model's tags by ``names``, creating Tag rows that do not exist yet."""
    return model_update(model=model, actor=actor, tags=names, actor_label=actor_label)


def model_delete(*, model: RegisteredModel, actor, actor_label: str | None = None) -> None:
    """Delete a model and its versions, then the blobs nothing else references.

    1. Refuse (409) while any of its versions is active or canary in a slot.
    2. Delete the rows and write the audit row in one transaction.
    3. After commit, delete the blobs no remaining ArtifactFile references.

    Never during a switch: it waits for the switch lock (registry.switch_guard).
    """
    with outside_switches(doing=f"deleting model {model.name}"), transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        versions = ModelVersion.objects.filter(model=model)
        slots = serving_slots(versions)
        if slots:
            raise InUse(
                f"model {model.name!r} cannot be deleted: slot(s) {', '.join(slots)} serve "
                "one of its versions; switch them to another version first"
            )
        before = model_snapshot(model)
        before["versions"] = sorted(versions.values_list("version", flat=True))
        sha256s = set(
            ArtifactFile.objects.filter(version__model=model).values_list("sha256", flat=True)
        )
        target = model_target(model)
        try:
            model.delete()
        except ProtectedError as exc:
            raise InUse(f"model {model.name!r} is in use: {exc.args[0]}") from exc
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="model.delete",
            target_type="model",
            target=target,
            before=before,
        )
        blobs_collect_on_commit(sha256s)


def _status_change(version: ModelVersion, status: str) -> str:
    if status == version.status:
        return status
    if status == VersionStatus.ARCHIVED:
        if version.status not in (VersionStatus.AVAILABLE, VersionStatus.ERROR):
            raise VersionConflict(
                f"version {version.ref} is {version.status}; only available or failed "
                "versions can be archived"
            )
        slots = serving_slots([version.pk])
        if slots:
            raise InUse(
                f"version {version.ref} cannot be archived: slot(s) {', '.join(slots)} serve it"
            )
        return status
    if status == VersionStatus.AVAILABLE and version.status == VersionStatus.ARCHIVED:
        # Unarchiving restores what the version was: a failed one stays failed.
        return VersionStatus.ERROR if version.error else VersionStatus.AVAILABLE
    raise InvalidInput(
        f"status can be set to 'archived' or back to 'available' (from archived); "
        f"{version.ref} is {version.status}, {status!r} requested"
    )


def version_update(
    *,
    version: ModelVersion,
    actor,
    fields: dict[str, Any] | None = None,
    status: str | None = None,
    trusted: bool | None = None,
    pinned: bool | None = None,
    actor_label: str | None = None,
) -> ModelVersion:
    """Edit a version's metadata (see registry.validation.VERSION_FIELDS) or (un)archive it.

    ``trusted`` lets a pickle-based version be unpickled and deployed; only the admin
    sets it (the API's PATCH cannot), and the audit row shows it before and after.

    ``pinned`` is desired state for the worker (keep the version loaded, never evict
    it), like a slot's active version:

    1. Pinning a version that may not be loaded (not available; unsafe and not
       trusted) is refused (409, NotDeployable) and changes nothing.
    2. An update that makes a pinned version undeployable (archiving it, revoking its
       trust) clears the pin in the same transaction and audit row.
    3. After commit, when the pin changed, the worker is nudged to converge now; a
       worker that does not answer fails nothing: its periodic reconcile catches up.
    4. Archiving waits for a running switch (registry.switch_guard), like a delete.
    """
    cleaned = clean_version_fields(fields or {})
    archiving = status == VersionStatus.ARCHIVED and version.status != VersionStatus.ARCHIVED
    guard = outside_switches(doing=f"archiving {version.ref}") if archiving else nullcontext()
    with guard, transaction.atomic():
        version = (
            ModelVersion.objects.select_for_update()
            .select_related("model", "model__owner")
            .get(pk=version.pk)
        )
        before = version_snapshot(version)
        for key, value in cleaned.items():
            setattr(version, key, value)
        if "parameter_size" in cleaned:
            version.parameter_count = parameter_count_for(
                version.inspection or {}, version.parameter_size
            )
        if trusted is not None:
            before["trusted"] = version.trusted
            version.trusted = bool(trusted)
        action = "version.update"
        if status is not None:
            new_status = _status_change(version, status)
            if new_status != version.status:
                action = (
                    "version.archive"
                    if new_status == VersionStatus.ARCHIVED
                    else "version.unarchive"
                )
                version.status = new_status
        version.pinned = pin_after_update(version, pinned)
        if version.pinned != before["pinned"] and action == "version.update":
            action = "version.pin" if version.pinned else "version.unpin"
        version.save()
        after = version_snapshot(version)
        if trusted is not None:
            after["trusted"] = version.trusted
        if version.pinned != before["pinned"]:
            worker_nudge_on_commit()
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action=action,
            target_type="version",
            target=version_target(version),
            before=before,
            after=after,
        )
    return version


def version_delete(*, version: ModelVersion, actor, actor_label: str | None = None) -> None:
    """Delete one version (refused while a slot serves it), then its unreferenced blobs.

    Never during a switch: it waits for the switch lock (registry.switch_guard).
    """
    with outside_switches(doing=f"deleting {version.ref}"), transaction.atomic():
        version = (
            ModelVersion.objects.select_for_update()
            .select_related("model", "model__owner")
            .get(pk=version.pk)
        )
        slots = serving_slots([version.pk])
        if slots:
            raise InUse(
                f"version {version.ref} cannot be deleted: slot(s) {', '.join(slots)} serve "
                "it; switch them to another version first"
            )
        before = version_snapshot(version)
        files = list(version.files.values_list("path", "sha256"))
        before["files"] = [{"path": path, "sha256": sha} for path, sha in files]
        target = version_target(version)
        try:
            version.delete()
        except ProtectedError as exc:
            raise InUse(f"version {version.ref} is in use: {exc.args[0]}") from exc
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="version.delete",
            target_type="version",
            target=target,
            before=before,
        )
        blobs_collect_on_commit(sha for _, sha in files)
