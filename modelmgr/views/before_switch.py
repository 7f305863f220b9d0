"""Before a switch, in the pages: the validation report of a chosen version against a
slot, and the fit preview of the changes on /settings (modelmgr.deploy.report and
.preview, the same services as the API). htmx fetches them when a choice changes."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from modelmgr.deploy.preview import switch_preview
from modelmgr.deploy.report import version_report
from modelmgr.deploy.slots import slot_get
from modelmgr.exceptions import ModelmgrError
from modelmgr.registry import selectors
from modelmgr.views.common import HtmxHttpRequest, parse_bool
from modelmgr.views.settings_page import SEEN_PREFIX, SELECT_PREFIX, changed_assignments


def _report_response(request, ref: str, slot_name: str, *, load: bool = False) -> HttpResponse:
    from modelmgr.api.auth import request_actor_label

    context: dict = {"slot_name": slot_name, "ref": ref}
    try:
        context["report"] = version_report(
            version=selectors.version_resolve(user=request.user, ref=ref),
            slot=slot_get(name=slot_name),
            load=load,
            actor=request.user,
            actor_label=request_actor_label(request),
        )
    except ModelmgrError as exc:
        context["error"] = exc.detail
    return render(request, "partials/report.html", context)


@login_required
@require_GET
def settings_check(request: HtmxHttpRequest, slot_name: str):
    """The report of the version chosen in a slot's select (nothing when it is "keep")."""
    ref = request.GET.get(f"{SELECT_PREFIX}{slot_name}") or ""
    if not ref or ref == request.GET.get(f"{SEEN_PREFIX}{slot_name}"):
        return HttpResponse("")
    return _report_response(request, ref, slot_name)


@login_required
@require_POST
def settings_preview(request: HtmxHttpRequest):
    """The fit preview of the changes the form holds (nothing when it holds none)."""
    assignments, _, _ = changed_assignments(request.POST)
    if not assignments:
        return HttpResponse("")
    context: dict = {}
    try:
        context["preview"] = switch_preview(targets=assignments, actor=request.user)
    except ModelmgrError as exc:
        context["error"] = exc.detail
    return render(request, "partials/fit_preview.html", context)


@login_required
@require_GET
def model_report(request: HtmxHttpRequest, name: str):
    """The model page's "check against slot": ?version=&slot=&load=."""
    owner = request.GET.get("owner") or ""
    version = request.GET.get("version") or ""
    ref = f"{owner + '/' if owner else ''}{name}@{version}"
    slot_name = request.GET.get("slot") or ""
    if not version or not slot_name:
        return render(
            request, "partials/report.html", {"error": "choose a version and a slot to check"}
        )
    return _report_response(request, ref, slot_name, load=bool(parse_bool(request.GET.get("load"))))
