"""Reads of the registry: lists, lookups and ``name@version`` resolution, visibility applied.

A model the caller may not see is reported as missing (404), never as forbidden: the
answer must not reveal that someone else has a model by that name.
"""

from __future__ import annotations

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from modelmgr.exceptions import NotFound, VersionConflict
from modelmgr.models import ModelVersion, Purpose, RegisteredModel, Tag, VersionStatus
from modelmgr.refs import parse_ref
from modelmgr.registry.catalog import parse_parameter_size
from modelmgr.registry.pagination import Page, keyset_page
from modelmgr.registry.validation import InvalidInput


def _with_summary(queryset: QuerySet) -> QuerySet:
    newest_available = (
        ModelVersion.objects.filter(model=OuterRef("pk"), status=VersionStatus.AVAILABLE)
        .order_by("-created_at", "-id")
        .values("version")[:1]
    )
    version_count = (
        ModelVersion.objects.filter(model=OuterRef("pk"))
        .order_by()
        .values("model")
        .annotate(n=Count("id"))
        .values("n")
    )
    return (
        queryset.select_related("owner")
        .prefetch_related("tags")
        .annotate(
            latest_version=Subquery(newest_available),
            version_count=Coalesce(Subquery(version_count, output_field=IntegerField()), 0),
        )
    )


def model_queryset(*, user) -> QuerySet:
    return _with_summary(RegisteredModel.objects.visible_to(user))


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
    candidates = model_queryset(user=user).filter(name=name)
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


def version_list(
    *,
    user,
    model: RegisteredModel,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[ModelVersion]:
    versions = version_queryset(user=user).filter(model=model)
    if status:
        versions = versions.filter(status=status)
    return keyset_page(versions, cursor=cursor, limit=limit)


def version_get(*, user, model: RegisteredModel, version: str) -> ModelVersion:
    found = version_queryset(user=user).filter(model=model, version=version).first()
    if found is None:
        raise NotFound(f"version {model.name}@{version} not found")
    return found


def version_resolve(*, user, ref: str) -> ModelVersion:
    """Resolve ``[owner/]name@version``; bare ``name`` means its newest available version."""
    parsed = parse_ref(ref)
    model = model_get(user=user, name=parsed.name, owner=parsed.owner)
    if parsed.version:
        return version_get(user=user, model=model, version=parsed.version)
    newest = (
        version_queryset(user=user)
        .filter(model=model, status=VersionStatus.AVAILABLE)
        .order_by("-created_at", "-id")
        .first()
    )
    if newest is None:
        raise NotFound(f"{ref!r} has no available version")
    return newest
