"""/models/upload: a file or a zipped folder with metadata, inspected on arrival."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.views.decorators.http import require_http_methods

from modelmgr.exceptions import ModelmgrError
from modelmgr.models import RegisteredModel
from modelmgr.registry.selectors import version_queryset
from modelmgr.views.common import HtmxHttpRequest, error_text, render_page
from modelmgr.views.forms import UploadForm


def _discard_uploads(request: HtmxHttpRequest) -> None:
    """A refused form must not leave staged bytes behind (Django closes them too, later)."""
    for uploaded in request.FILES.values():
        uploaded.close()


@login_required
@require_http_methods(["GET", "POST"])
def upload_page(request: HtmxHttpRequest):
    form = UploadForm(request.POST or None, request.FILES or None)
    context = {
        "form": form,
        "my_models": RegisteredModel.objects.filter(owner=request.user).values_list(
            "name", flat=True
        ),
        "created": None,
        "error": "",
    }
    if request.method == "POST":
        if form.is_valid():
            try:
                context["created"] = _ingest(request, form)
                context["form"] = UploadForm()
            except ModelmgrError as exc:
                context["error"] = error_text(exc)
        else:
            context["error"] = "; ".join(
                f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
                for name, errors in form.errors.items()
            )
        _discard_uploads(request)
        # A refused upload is a 422 for a plain form post; htmx swaps only 2xx answers by
        # default, and the red box must be swapped in.
        status = 422 if context["error"] and not request.htmx else 200
        return render_page(request, "upload.html", context, partial="result", status=status)
    return render_page(request, "upload.html", context)


def _ingest(request: HtmxHttpRequest, form: UploadForm):
    from modelmgr.api.auth import request_actor_label
    from modelmgr.ingest.services import incoming_from_upload
    from modelmgr.registry.uploads import version_upload

    data = form.cleaned_data
    incoming = incoming_from_upload(data["file"], archive=form.archive_flag())
    version = version_upload(
        actor=request.user,
        name=data["name"],
        files=incoming,
        task=data["task"] or None,
        tags=form.tag_list(),
        version=data["version"] or None,
        framework=data["framework"] or None,
        fields=form.version_fields(),
        actor_label=request_actor_label(request),
    )
    return version_queryset(user=request.user).get(pk=version.pk)
