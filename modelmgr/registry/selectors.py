"""Reads of the registry: lists, lookups and ``name@version`` resolution, visibility applied.

A model the caller may not see is reported as missing (404), never as forbidden: the
answer must not reveal that someone else has a model by that name.
"""

from __future__ import annotations

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet

from modelmgr.exceptions import NotFound, VersionConflict
from modelmgr.models import ArtifactFile, ModelVersion, Purpose, RegisteredModel, Tag, VersionStatus
from modelmgr.refs import parse_ref
from modelmgr.registry.catalog import parse_parameter_size
from modelmgr.registry.files_json import attach_files, with_files_json
from modelmgr.registry.pagination import Page, keyset_page, keyset_page_newest
from modelmgr.registry.prepared import PreparedQuery
from modelmgr.registry.validation import InvalidInput

# A plain list on each model: prefetched into the related manager's cache, Django builds a
# manager and a queryset clone per model (a fifth of the /models page's CPU for 20 rows).
_TAGS = Prefetch("tags", to_attr="tag_list")


def model_queryset(*, user) -> QuerySet:
    # version_count and latest_version are columns kept by triggers
    # (modelmgr.registry.counters): no subquery over the model's versions.
    return RegisteredModel.objects.visible_to(user).select_related("owner").prefetch_related(_TAGS)


def model_tags(model) -> list[Tag]:
    """A model's tags: the list ``model_queryset`` prefetched, or read now for a model
    fetched some other way."""
    prefetched = getattr(model, "tag_list", None)
    return prefetched if prefetched is not None else list(model.tags.all())


def _model_lookup(*, user) -> QuerySet:
    # One model: its tags are read when shown (a version route never shows them).
    return RegisteredModel.objects.visible_to(user).select_related("owner")


def model_list(
    *,
    user,
    q: str | None = None,
    task: str | None = None,
    framework: str | None = None,
    tag: str | None = None,
    owner: str | None = None,
    status: str | None = None,
    production_ready: bool | None = None,
    max_vram_mb: int | None = None,
    family: str | None = None,
    purpose: str | None = None,
    max_params: str | int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[RegisteredModel]:
    """Visible models, newest first, filtered; one keyset page.

    Version filters (status, production_ready, max_vram_mb, family, purpose,
    max_params) apply together to one version: a model matches when some single
    version meets all of them. A version whose VRAM need (parameter count) is unknown
    does not match ``max_vram_mb`` (``max_params``): it is not known to fit.
    """
    models = model_queryset(user=user)
    if q:
        tagged = Tag.objects.filter(models=OuterRef("pk"), name__icontains=q)
        models = models.filter(
            Q(name__icontains=q) | Q(description__icontains=q) | Q(Exists(tagged))
        )
    if task:
        models = models.filter(task=task)
    if framework:
        with_framework = ModelVersion.objects.filter(model=OuterRef("pk"), framework=framework)
        models = models.filter(Q(framework=framework) | Q(Exists(with_framework)))
    if tag:
        models = models.filter(Exists(Tag.objects.filter(models=OuterRef("pk"), name=tag)))
    if owner:
        models = models.filter(owner__username=owner)
    version_filter = Q()
    if status:
        version_filter &= Q(status=status)
    if production_ready is not None:
        version_filter &= Q(production_ready=production_ready)
    if max_vram_mb is not None:
        if max_vram_mb < 0:
            raise InvalidInput(f"max_vram_mb must be 0 or more, not {max_vram_mb}")
        version_filter &= Q(min_vram_mb__isnull=False, min_vram_mb__lte=max_vram_mb)
    if family:
        version_filter &= Q(family__iexact=family)
    if purpose:
        if purpose not in Purpose.values:
            raise InvalidInput(f"purpose {purpose!r} is not one of: {', '.join(Purpose.values)}")
        version_filter &= Q(purpose=purpose)
    if max_params not in (None, ""):
        limit_params = parse_parameter_size(max_params, field="max_params")
        version_filter &= Q(parameter_count__isnull=False, parameter_count__lte=limit_params)
    if version_filter:
        matching = ModelVersion.objects.filter(version_filter, model=OuterRef("pk"))
        models = models.filter(Exists(matching))
    return keyset_page(models, cursor=cursor, limit=limit)


def model_get(*, user, name: str, owner: str | None = None) -> RegisteredModel:
    """The one visible model called ``name`` (of ``owner`` when given).

    Staff see every namespace, so a name may be ambiguous for them: that is a 409
    asking for the owner rather than a guess.
    """
    # No ORDER BY: name (+ owner) is a unique index seek; the ambiguity message sorts.
    candidates = _model_lookup(user=user).filter(name=name).order_by()
    if owner:
        candidates = candidates.filter(owner__username=owner)
    found = list(candidates[:10])
    if not found:
        whose = f" of owner {owner!r}" if owner else ""
        raise NotFound(f"model {name!r}{whose} not found")
    if len(found) > 1:
        owners = ", ".join(sorted(m.owner.get_username() for m in found))
        raise VersionConflict(
            f"several models are named {name!r} (owners: {owners}); pass owner=<username> "
            f"or use owner/{name}"
        )
    return found[0]


def model_get_owned(*, user, name: str) -> RegisteredModel | None:
    """The caller's own model called ``name``, or None."""
    return model_queryset(user=user).filter(owner=user, name=name).first()


def version_queryset(*, user) -> QuerySet:
    return (
        ModelVersion.objects.visible_to(user)
        .select_related("model", "model__owner", "created_by")
        .prefetch_related("files")
    )


def _versions_of(model: RegisteredModel, *, files: bool = True) -> QuerySet:
    """The versions of a model the caller already got through model_get, so already
    visible to them: no visibility join, and no model or owner row per version (each
    one gets ``model`` itself, see _with_model)."""
    versions = ModelVersion.objects.filter(model=model).select_related("created_by", "provider")
    return versions.prefetch_related("files") if files else versions


def _with_model(versions: list[ModelVersion], model: RegisteredModel) -> list[ModelVersion]:
    for version in versions:
        version.model = model
    return versions


def version_list(
    *,
    user,
    model: RegisteredModel,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    files: bool = True,
) -> Page[ModelVersion]:
    """One keyset page of ``model``'s versions, newest first: a walk of the (model,
    created_at, id) index, or (model, status, created_at, id) with ``status``.
    ``files=False``: without their files (see version_files)."""
    versions = _versions_of(model, files=files)
    if status:
        versions = versions.filter(status=status)
    page = keyset_page_newest(versions, cursor=cursor, limit=limit)
    _with_model(page.items, model)
    return page


def version_files(versions: list[ModelVersion]) -> dict[int, list[dict]]:
    """The files of ``versions`` as plain rows (FileOut's fields), by version id: one
    query and no model instance per file, for a page of versions."""
    by_version: dict[int, list[dict]] = {v.pk: [] for v in versions}
    rows = ArtifactFile.objects.filter(version_id__in=list(by_version)).order_by("path")
    for row in rows.values("version_id", "path", "size", "sha256", "content_type", "is_primary"):
        by_version[row.pop("version_id")].append(row)
    return by_version


def _first(versions: QuerySet, model: RegisteredModel) -> ModelVersion | None:
    return next(iter(_with_model(list(versions[:1]), model)), None)


def version_get(*, user, model: RegisteredModel, version: str) -> ModelVersion:
    found = _first(_versions_of(model).filter(version=version).order_by(), model)
    if found is None:
        raise NotFound(f"version {model.name}@{version} not found")
    return found


# Placeholders of the prepared lookups below: values no request can send.
_NAME = "\x00name"
_OWNER = "\x00owner"
_VERSION = "\x00version"
_USER_ID = -424_242_424_242
_VERSION_ID = -434_343_434_343


def _version_by_name(*, staff: bool, by_owner: bool, by_version: bool) -> PreparedQuery:
    """The one-query lookup of a version by name (and owner, and version, or the
    trigger-kept newest available), for staff (every namespace) or one user's own."""

    def build(name: str, owner: str = "", version: str = "", user_id: int = 0) -> QuerySet:
        versions = ModelVersion.objects.filter(model__name=name)
        if not staff:
            versions = versions.filter(model__owner_id=user_id)
        if by_owner:
            versions = versions.filter(model__owner__username=owner)
        if by_version:
            versions = versions.filter(version=version)
        else:
            versions = versions.filter(
                version=F("model__latest_version"), status=VersionStatus.AVAILABLE
            )
        versions = versions.select_related("model__owner", "created_by", "provider")
        return with_files_json(versions).order_by()[:2]

    # Only the values this shape's query uses: each must be found among its parameters.
    placeholders = {"name": _NAME}
    if not staff:
        placeholders["user_id"] = _USER_ID
    if by_owner:
        placeholders["owner"] = _OWNER
    if by_version:
        placeholders["version"] = _VERSION
    return PreparedQuery(build, **placeholders)


_BY_NAME = {
    (staff, by_owner, by_version): _version_by_name(
        staff=staff, by_owner=by_owner, by_version=by_version
    )
    for staff in (False, True)
    for by_owner in (False, True)
    for by_version in (False, True)
}


def _version_in_one_query(
    *, user, name: str, owner: str | None, version: str | None
) -> ModelVersion | None:
    """The version named, with its model, owner and files (modelmgr.registry.files_json),
    in one query, or None: then the caller takes the step-by-step path, which says what is
    missing.

    Bare ``name`` joins on the trigger-kept ``latest_version`` (and re-checks that it is
    still available). Staff without ``owner`` see every namespace, where a name may be
    ambiguous (a 409 from model_get): they take the step-by-step path. The query is
    prepared (modelmgr.registry.prepared): compiled once, not on every request."""
    if user.is_staff and not owner:
        return None
    values = {"name": name, "owner": owner, "version": version, "user_id": user.pk}
    lookup = _BY_NAME[(bool(user.is_staff), bool(owner), bool(version))]
    found = lookup.run(**{key: values[key] for key in lookup.names})
    return attach_files(found[0]) if len(found) == 1 else None


def version_lookup(*, user, name: str, version: str, owner: str | None = None) -> ModelVersion:
    """``name``'s version ``version`` (of ``owner``), visible to ``user``; else 404/409."""
    found = _version_in_one_query(user=user, name=name, owner=owner, version=version)
    if found is not None:
        return found
    model = model_get(user=user, name=name, owner=owner)
    return version_get(user=user, model=model, version=version)


def version_resolve(*, user, ref: str) -> ModelVersion:
    """Resolve ``[owner/]name@version``; bare ``name`` means its newest available version."""
    parsed = parse_ref(ref)
    found = _version_in_one_query(
        user=user, name=parsed.name, owner=parsed.owner, version=parsed.version
    )
    if found is not None:
        return found
    model = model_get(user=user, name=parsed.name, owner=parsed.owner)
    if parsed.version:
        return version_get(user=user, model=model, version=parsed.version)
    newest = None
    if model.latest_version:
        # The trigger-kept newest available (modelmgr.registry.counters): one seek on
        # the unique (model, version) index. Re-checked, as it may have been archived
        # since the model's row was read.
        latest = _versions_of(model).filter(version=model.latest_version).order_by()
        newest = _first(latest.filter(status=VersionStatus.AVAILABLE), model)
    if newest is None:  # none available, or archived since: the index's answer
        available = _versions_of(model).filter(status=VersionStatus.AVAILABLE)
        newest = _first(available.order_by("-created_at", "-id"), model)
    if newest is None:
        raise NotFound(f"{ref!r} has no available version")
    return newest
