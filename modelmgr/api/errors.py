"""Map domain exceptions to HTTP once, for the whole API."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError

from modelmgr.exceptions import ModelmgrError

log = logging.getLogger("modelmgr.api")
RETRY_AFTER_S = "5"  # what a 503 (worker down or restarting) tells a client to wait


def _describe(error: dict) -> str:
    # ninja puts the source (body, query, form, file, path) first, and for a body the
    # view's parameter name next: both are noise to a caller.
    loc = list(error.get("loc", ()))
    skip = 2 if loc[:1] == ["body"] and len(loc) > 2 else 1
    loc = [str(part) for part in loc[skip:]]
    where = ".".join(loc) or "request"
    return f"{where}: {error.get('msg', 'invalid')}"


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ModelmgrError)
    def domain_error(request: HttpRequest, exc: ModelmgrError):
        response = api.create_response(request, {"detail": exc.detail}, status=exc.status)
        if exc.status == 503:
            # The worker is down or restarting (runall restarts it): tell clients when
            # to try again, as a switch does.
            response["Retry-After"] = RETRY_AFTER_S
        return response

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError):
        # detail names every problem in words; errors keeps pydantic's structured list.
        detail = "; ".join(_describe(error) for error in exc.errors) or "invalid request"
        return api.create_response(request, {"detail": detail, "errors": exc.errors}, status=422)

    @api.exception_handler(RequestDataTooBig)
    def body_too_big(request: HttpRequest, exc: RequestDataTooBig):
        # A client's mistake, not the server's: one log line, no traceback.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = request.META.get("CONTENT_LENGTH") or "?"
        log.warning(
            "413 %s %s: body of %s bytes over %d", request.method, request.path, length, limit
        )
        detail = (
            f"request body of {length} bytes exceeds the {limit} byte limit for JSON requests "
            "(DATA_UPLOAD_MAX_MEMORY_SIZE); upload files as multipart to .../versions"
        )
        return api.create_response(request, {"detail": detail}, status=413)

    @api.exception_handler(AuthenticationError)
    def authentication_error(request: HttpRequest, exc: AuthenticationError):
        return api.create_response(
            request,
            {"detail": "authentication required: send 'Authorization: Bearer <token>' or log in"},
            status=401,
        )


def install_deploy_error_handlers(api: NinjaAPI) -> None:
    """Deploy errors name a cause per slot: {"detail": ..., "slots": {slot: cause}}."""
    from modelmgr.deploy.errors import SlotErrors

    @api.exception_handler(SlotErrors)
    def slot_errors(request: HttpRequest, exc: SlotErrors):
        body = {"detail": exc.detail, "slots": exc.slots}
        response = api.create_response(request, body, status=exc.status)
        if exc.status == 503:
            response["Retry-After"] = RETRY_AFTER_S
        return response
