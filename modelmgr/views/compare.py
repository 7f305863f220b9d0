"""/models/compare?a=&b=: two versions side by side (modelmgr.deploy.compare)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.views.decorators.http import require_GET

from modelmgr.deploy.compare import compare_versions
from modelmgr.exceptions import ModelmgrError
from modelmgr.views.common import HtmxHttpRequest, error_text, render_page


@login_required
@require_GET
def compare_page(request: HtmxHttpRequest):
    a, b = (request.GET.get("a") or "").strip(), (request.GET.get("b") or "").strip()
    context: dict = {"a": a, "b": b, "result": None, "error": ""}
    status = 200
    if a and b:
        try:
            context["result"] = compare_versions(user=request.user, a=a, b=b)
        except ModelmgrError as exc:
            context["error"], status = error_text(exc), exc.status
    elif a or b:
        context["error"], status = "give two versions to compare (a and b)", 400
    return render_page(request, "compare.html", context, status=status)
