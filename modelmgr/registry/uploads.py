"""Upload a version, registering the model on its first upload (like MLflow's register)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from modelmgr.exceptions import ModelNameTaken, VersionConflict
from modelmgr.ingest.incoming import discard_incoming
from modelmgr.metrics import UPLOADS, counted
from modelmgr.models import ModelVersion, RegisteredModel
from modelmgr.registry.selectors import model_get, model_get_owned
from modelmgr.registry.services import model_create, model_update
from modelmgr.registry.validation import clean_tag_names, clean_task


# Imports come through here too (with their URL as source_uri): counted as imports.
@counted(UPLOADS, when=lambda kwargs: not kwargs.get("source_uri"))
def version_upload(
    *,
    actor,
    name: str,
    files: list,
    owner: str | None = None,
    task: str | None = None,
    tags: list[str] | None = None,
    version: str | None = None,
    framework: str | None = None,
    primary_path: str | None = None,
    fields: dict[str, Any] | None = None,
    source_uri: str = "",
    actor_label: str | None = None,
) -> ModelVersion:
    """Create a version of ``name`` from incoming files (ingest's IncomingFile list).

    1. Check task and tags before any work.
    2. ``owner`` naming someone else: their model must exist and be visible (staff).
       Otherwise the caller's own model is used, or registered when missing (task,
       tags and description from the upload).
    3. A new model is created in the same transaction as its first version, so a
       refused upload leaves no model behind. Two first uploads at once: the one that
       loses the race for the name (the unique constraint, ModelNameTaken) uploads into
       the winner's model instead of failing. An existing model's upload runs in
       ingest's transaction only (an outer one would hold SQLite's write lock through
       inspection); it keeps its task (a different ``task`` is a 409, not a silent
       change) and gains the upload's tags once the version exists.
    4. The incoming files are discarded on any failure.
    """
    from modelmgr.ingest.services import version_create

    def create(model: RegisteredModel) -> ModelVersion:
        return version_create(
            model=model,
            actor=actor,
            files=files,
            version=version,
            framework=framework,
            primary_path=primary_path,
            fields=fields,
            source_uri=source_uri,
            actor_label=actor_label,
            infer_task=not task,
        )

    try:
        tag_names = clean_tag_names(tags) if tags else []
        if task:
            clean_task(task)
        if owner and owner != actor.get_username():
            model = model_get(user=actor, name=name, owner=owner)
        else:
            model = model_get_owned(user=actor, name=name)
        if model is None:
            try:
                with transaction.atomic():
                    model = model_create(
                        owner=actor,
                        name=name,
                        task=task or "other",
                        tags=tag_names,
                        description=(fields or {}).get("description") or "",
                        actor=actor,
                        actor_label=actor_label,
                    )
                    return create(model)
            except ModelNameTaken:
                # A concurrent first upload registered the model since we looked: upload
                # into it (the files are untouched: the create failed before ingest).
                model = model_get_owned(user=actor, name=name)
                if model is None:
                    raise
        if task and task != model.task:
            raise VersionConflict(
                f"model {model.name!r} is registered for task {model.task!r}, not {task!r}; "
                "change the model's task first (PATCH the model) if that is intended"
            )
        created = create(model)
    except BaseException:
        discard_incoming(files)
        raise
    current = [tag.name for tag in model.tags.all()]
    added = [name for name in tag_names if name not in current]
    if added:
        model_update(model=model, actor=actor, tags=current + added, actor_label=actor_label)
    return created
