"""/models/<name>: versions, files, signature, metrics, requirements, usage and actions."""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from modelmgr.exceptions import ModelmgrError, NotFound
from modelmgr.models import RegisteredModel, Slot
from modelmgr.registry import selectors, services
from modelmgr.views.common import (
    HtmxHttpRequest,
    error_text,
    other_owner,
    owner_query,
    render_page,
)
from modelmgr.views.drift import drift_for_version
from modelmgr.views.usage import usage_for_version
from modelmgr.views.version_rows import version_rows

# One keyset page of versions (cursor on created_at, id): the page costs the same at
# 10 versions and at 100k ("Older versions" walks on).
VERSIONS_SHOWN = 25

log = logging.getLogger(__name__)


def _model(request: HtmxHttpRequest, name: str) -> RegisteredModel:
    try:
        return selectors.model_get(
            user=request.user, name=name, owner=request.GET.get("owner") or None
        )
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _model_url(
    model: RegisteredModel, user, version: str | None = None, cursor: str | None = None
) -> str:
    params = {}
    if owner := other_owner(model, user):
        params["owner"] = owner
    if version:
        params["version"] = version
    if cursor:
        params["vcursor"] = cursor
    url = reverse("model-detail", args=[model.name])
    return f"{url}?{urlencode(params, quote_via=quote)}" if params else url


def _version_context(
    request,
    model: RegisteredModel,
    selected,
    *,
    message: str = "",
    error: str = "",
    checks: list | None = None,
) -> dict:
    # Every slot (the report's choices) and the ones serving the version, in one query.
    slots = list(Slot.objects.order_by("name").values_list("name", "active_version_id"))
    serving = [name for name, active in slots if selected is not None and active == selected.pk]
    return {
        "model": model,
        "selected": selected,
        "serving": serving,
        "check_slots": [name for name, _ in slots],
        "drift": drift_for_version(selected.pk, serving) if serving else [],
        "message": message,
        "error": error,
        "checks": checks or [],
        "owner_q": owner_query(model, request.user),
        **_profile_context(model, selected),
    }


def _profile_context(model: RegisteredModel, selected) -> dict:
    """The version's stored profile and the other versions to compare it with."""
    from modelmgr.deploy.fleet import fleet_members
    from modelmgr.deploy.profile import profile_latest

    if selected is None:
        return {"profile": None, "compare_choices": [], "is_llm": False}
    owner = model.owner.get_username()
    # Names only: the list needs nothing else (no JSON fields decoded for 50 rows).
    others = (
        model.versions.exclude(pk=selected.pk)
        .order_by("-created_at", "-id")
        .values_list("version", flat=True)[:50]
    )
    up = [member.name for member in fleet_members() if member.up]
    return {
        "profile": profile_latest(selected),
        # A choice only where there is one: with one worker, the button profiles there.
        "profile_workers": up if len(up) > 1 else [],
        "v_full_ref": f"{owner}/{selected.ref}",
        "compare_choices": [f"{owner}/{model.name}@{version}" for version in others],
        "is_llm": model.task == "llm",
    }


def _versions_page(request: HtmxHttpRequest, model: RegisteredModel) -> dict:
    """The versions table: one keyset page (``vcursor``), with links to the next one."""
    cursor = request.GET.get("vcursor", "")
    try:
        page = selectors.version_list(
            user=request.user, model=model, cursor=cursor or None, limit=VERSIONS_SHOWN, files=False
        )
    except ModelmgrError as exc:
        return {"versions": [], "versions_error": error_text(exc), "versions_cursor": cursor}
    return {
        "versions": page.items,
        "versions_cursor": cursor,
        "older_versions_url": _model_url(model, request.user, cursor=page.next_cursor)
        if page.next_cursor
        else "",
        "newest_versions_url": _model_url(model, request.user) if cursor else "",
    }


def _page_context(request, model: RegisteredModel, selected, listing: dict, **panel) -> dict:
    """The version panel, the versions table (``listing``) and its rows."""
    rows = version_rows(
        listing["versions"],
        selected=selected,
        detail_url=reverse("model-detail", args=[model.name]),
        owner=other_owner(model, request.user),
        cursor=listing["versions_cursor"],
    )
    return {
        **_version_context(request, model, selected, **panel),
        **listing,
        "version_rows": rows,
    }


@login_required
@require_GET
def model_detail_page(request: HtmxHttpRequest, name: str):
    model = _model(request, name)
    listing = _versions_page(request, model)
    versions = listing["versions"]
    wanted = request.GET.get("version")
    selected = next((v for v in versions if v.version == wanted), None) if wanted else None
    if selected is None and wanted:  # a version from another page of the table
        try:
            selected = selectors.version_get(user=request.user, model=model, version=wanted)
        except NotFound:
            selected = None
    if selected is None and versions:
        selected = next((v for v in versions if v.status == "available"), versions[0])
    context = _page_context(request, model, selected, listing)
    return render_page(request, "model_detail.html", context, partial="version" if wanted else None)


@login_required
@require_GET
def version_usage_panel(request: HtmxHttpRequest, name: str, version: str):
    """The version's usage (totals per slot, the last 24 h as plots), fetched by its
    page once shown: a busy version's day is 1,440 rows a slot to add up, and the
    rest of the page need not wait for them."""
    model = _model(request, name)
    try:
        selected = selectors.version_get(user=request.user, model=model, version=version)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    return render(request, "partials/usage.html", {"usage": usage_for_version(selected)})


def _took(seconds: float) -> str:
    """A tiny model profiles in tens of milliseconds: "0.0 s" would say nothing."""
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _validate(version, actor, actor_label: str) -> tuple[str, str, list]:
    """(message, error, checks) of a validation, for the version panel."""
    from modelmgr.deploy.validate import version_validate

    outcome = version_validate(version=version, actor=actor, actor_label=actor_label)
    if outcome["ok"]:
        return outcome["detail"], "", outcome.get("checks", [])
    return "", outcome["detail"], outcome.get("checks", [])


@login_required
@require_POST
def version_action(request: HtmxHttpRequest, name: str, version: str, action: str):
    from modelmgr.api.auth import request_actor_label

    model = _model(request, name)
    try:
        found = selectors.version_get(user=request.user, model=model, version=version)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    label = request_actor_label(request)
    message, error, checks = "", "", []
    try:
        if action == "validate":
            message, error, checks = _validate(found, request.user, label)
        elif action == "profile":
            from modelmgr.deploy.profile import version_profile_run

            done = version_profile_run(
                version=found,
                actor=request.user,
                actor_label=label,
                worker=request.POST.get("worker", ""),
            )
            first = done.results[0] if done.results else {"p50_ms": 0, "batch_size": 1}
            where = f"{done.device} of {done.worker_id}" if done.worker_id else done.device
            message = (
                f"Profiled {found.ref} on {where} in {_took(done.duration_s)}: "
                f"{first['p50_ms']:.3g} ms p50 at batch {first['batch_size']}."
            )
        elif action == "verify":
            from modelmgr.ingest.services import version_verify

            try:
                result = version_verify(version=found, actor=request.user, actor_label=label)
            except OSError as exc:
                log.warning("could not read the stored files of %s", found.ref, exc_info=True)
                # strerror, not str(exc): that would show the server's path.
                reason = exc.strerror or type(exc).__name__
                error = (
                    f"Could not read the stored files of {found.ref} ({reason}); nothing changed."
                )
            else:
                checks = result["files"]
                if result["ok"]:
                    message = f"All {len(checks)} file(s) of {found.ref} match their sha256."
                else:
                    error = f"{found.ref} failed the integrity check; it is now in error."
        elif action in ("production-ready", "not-production-ready"):
            ready = action == "production-ready"
            services.version_update(
                version=found,
                actor=request.user,
                fields={"production_ready": ready},
                actor_label=label,
            )
            message = f"{found.ref} is {'now' if ready else 'no longer'} marked production-ready."
        elif action in ("pin", "unpin"):
            pin = action == "pin"
            services.version_update(
                version=found, actor=request.user, pinned=pin, actor_label=label
            )
            message = (
                f"{found.ref} is pinned: the worker keeps it loaded even when no slot serves it."
                if pin
                else f"{found.ref} is no longer pinned: the worker may unload it when "
                "it needs the memory."
            )
        elif action in ("archive", "unarchive"):
            services.version_update(
                version=found,
                actor=request.user,
                actor_label=label,
                status="archived" if action == "archive" else "available",
            )
            message = f"{found.ref} {'archived' if action == 'archive' else 'unarchived'}."
        elif action == "delete":
            services.version_delete(version=found, actor=request.user, actor_label=label)
            messages.success(request, f"Deleted {found.ref}.")
            target = _model_url(model, request.user)
            return HttpResponseClientRedirect(target) if request.htmx else redirect(target)
        else:
            return HttpResponse(f"unknown action {action!r}", status=404)
    except ModelmgrError as exc:
        error = error_text(exc)
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif message:
            messages.success(request, message)
        return redirect(_model_url(model, request.user, found.version))
    fresh = selectors.version_queryset(user=request.user).get(pk=found.pk)
    context = _page_context(
        request,
        model,
        fresh,
        _versions_page(request, model),
        message=message,
        error=error,
        checks=checks,
    )
    # The version panel, plus the versions table out of band (status badges may change).
    return render_page(request, "model_detail.html", context, partial="version-and-list")


@login_required
@require_POST
def model_delete_action(request: HtmxHttpRequest, name: str):
    from modelmgr.api.auth import request_actor_label

    model = _model(request, name)
    try:
        services.model_delete(
            model=model, actor=request.user, actor_label=request_actor_label(request)
        )
    except ModelmgrError as exc:
        if request.htmx:
            return render_page(
                request,
                "model_detail.html",
                {"model": model, "delete_error": error_text(exc)},
                partial="delete-model",
            )
        messages.error(request, error_text(exc))
        return redirect(_model_url(model, request.user))
    messages.success(request, f"Deleted model {model.name} and its versions.")
    target = reverse("models")
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)
