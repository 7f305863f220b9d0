"""JSON answers for /api/ requests that never reach an API operation.

Django answers an unknown URL, a request it refuses (RequestDataTooBig, a bad Host) and an
unhandled exception with its HTML pages; under /api/ a client parses JSON, so these answer
``{"detail": ...}`` there and leave the pages' answers alone.
"""

from __future__ import annotations

import json

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt

API_PREFIX = "/api/"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


@csrf_exempt  # nothing here to protect: a POST to a wrong path is a 404, not a CSRF 403
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


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a session's POST without its CSRF token (API tokens need none)."""
    if is_api(request):
        detail = f"CSRF check failed ({reason}): send the X-CSRFToken header, or use a token"
        return JsonResponse({"detail": detail}, status=403)
    return csrf.csrf_failure(request, reason)


def _as_json(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if (
        response.status_code >= 400
        and is_api(request)
        and not response.streaming
        and not response.get("Content-Type", "").startswith("application/json")
    ):
        # ninja's 405 (empty, with Allow), a 416 without a body: keep the headers, say why.
        detail = response.reason_phrase
        if response.status_code == 405 and response.has_header("Allow"):
            detail += f": {request.method} is not allowed here; allowed: {response['Allow']}"
        response.content = json.dumps({"detail": detail}).encode()
        response["Content-Type"] = "application/json"
        if response.has_header("Content-Length"):  # CommonMiddleware set it for the old body
            response["Content-Length"] = str(len(response.content))
    return response


class ApiJsonErrorsMiddleware:
    """The last net: any error answer under /api/ that is not JSON becomes {"detail"}.

    Sync and async both, so the async predict view takes no extra thread hop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        return _as_json(request, self.get_response(request))

    async def _acall(self, request: HttpRequest):
        return _as_json(request, await self.get_response(request))
