"""/imports: import a model from a URL, watch jobs progress live, cancel and retry them."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.views.decorators.http import require_http_methods, require_POST

from modelmgr.exceptions import ModelmgrError
from modelmgr.views.common import HtmxHttpRequest, error_text, render_page
from modelmgr.views.forms import ImportForm

JOBS_SHOWN = 50


def _jobs(user) -> list[dict]:
    from modelmgr.imports.selectors import import_list, import_payload

    return [import_payload(job) for job in import_list(user=user, limit=JOBS_SHOWN).items]


def _actor_label(request) -> str:
    from modelmgr.api.auth import request_actor_label

    return request_actor_label(request)


@login_required
@require_http_methods(["GET", "POST"])
def imports_page(request: HtmxHttpRequest):
    from modelmgr.imports.services import import_create

    form = ImportForm(request.POST or None)
    message, error = "", ""
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                job = import_create(
                    owner=request.user,
                    url=data["url"],
                    model_name=data["name"],
                    version=data["version"] or None,
                    task=data["task"] or None,
                    expected_sha256=data["sha256"] or None,
                    actor=request.user,
                    actor_label=_actor_label(request),
                )
                message = f"Import {job.pk} of {job.model_name} queued."
                form = ImportForm()
            except ModelmgrError as exc:
                error = error_text(exc)
        else:
            error = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
    context = {"form": form, "jobs": _jobs(request.user), "message": message, "error": error}
    return render_page(
        request, "imports.html", context, partial="jobs-area" if request.method == "POST" else None
    )


@login_required
@require_POST
def import_action(request: HtmxHttpRequest, job_id: int, action: str):
    from modelmgr.imports.selectors import import_get, import_payload
    from modelmgr.imports.services import import_cancel, import_delete, import_retry

    services = {"cancel": import_cancel, "retry": import_retry, "delete": import_delete}
    row_error = ""
    try:
        job = import_get(user=request.user, job_id=job_id)
        if action not in services:
            return HttpResponse(f"unknown action {action!r}", status=404)
        services[action](job=job, actor=request.user, actor_label=_actor_label(request))
        if action == "delete":
            if request.htmx:
                return HttpResponse("")
            return _back()
        job = import_get(user=request.user, job_id=job_id)
    except ModelmgrError as exc:
        if exc.status == 404:
            return HttpResponse(error_text(exc), status=404)
        row_error = error_text(exc)
        job = import_get(user=request.user, job_id=job_id)
    if not request.htmx:
        return _back()
    return render_page(
        request, "imports.html", {"job": import_payload(job), "row_error": row_error}, partial="job"
    )


def _back():
    from django.shortcuts import redirect

    return redirect("imports")
