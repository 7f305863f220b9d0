"""JSON answers for /api/ requests that never reach an API operation.

Django answers an unknown URL, a request it refuses (RequestDataTooBig, a bad Host) and an
unhandled exception with its HTML pages; under /api/ a client parses JSON, so these answer
``{"detail": ...}`` there and leave the pages' answers alone.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """The catch-all after the API's routes: an /api/... path no operation serves."""
    return JsonResponse({"detail": f"no API endpoint at {request.path}"}, status=404)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": f"bad request: {exception or 'refused'}"}, status=400)
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "internal server error (see the server's log)"}, status=500)
    return defaults.server_error(request)
