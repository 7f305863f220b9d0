"""/favicon.ico: browsers ask for it on every page whatever the <link> says; answer it
instead of logging a 404 each time."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

FAVICON = settings.BASE_DIR / "static" / "favicon.svg"


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request):  # noqa: ARG001
    return HttpResponse(FAVICON.read_bytes(), content_type="image/svg+xml")
