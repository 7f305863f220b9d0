"""API auth: browser sessions (with CSRF) or ``Authorization: Bearer <token>`` with scopes.

Safe methods need the ``read`` scope; anything that changes state needs ``write``.
A token that is valid but lacks the scope is a 403 naming the scope; a token that is
unknown or revoked is a 401 (a client that sends a token means to use it, so it does
not fall back to the session).
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseForbidden, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from ninja.errors import HttpError
from ninja.security import HttpBearer, SessionAuth

from modelmgr.audit import actor_label_for
from modelmgr.exceptions import Forbidden
from modelmgr.models import ApiToken
from modelmgr.registry.tokens import token_for_use

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def required_scope(request: HttpRequest) -> ApiToken.Scope:
    return ApiToken.Scope.READ if request.method in SAFE_METHODS else ApiToken.Scope.WRITE


class TokenAuth(HttpBearer):
    def __init__(self, scope: ApiToken.Scope | None = None) -> None:
        # A fixed scope for operations whose method misleads (predict: a POST that reads).
        self.scope = scope
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str):
        api_token = token_for_use(token)
        if api_token is None:
            raise HttpError(401, "invalid or revoked API token")
        scope = str((self.scope or required_scope(request)).value)
        if not api_token.has_scope(scope):
            raise Forbidden(
                f"token {api_token.name!r} lacks the {scope!r} scope needed for "
                f"{request.method} requests"
            )
        request.user = api_token.user
        request.api_token = api_token
        return api_token.user


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, remembering the reason instead of rendering a failure page."""

    def __init__(self) -> None:
        super().__init__(lambda request: None)
        self.reason: str | None = None

    def _reject(self, request, reason):
        self.reason = reason
        return HttpResponseForbidden()


def _csrf_failure(request: HttpRequest) -> str | None:
    """The CSRF middleware's reason for refusing ``request``, or None when it passes."""
    if getattr(request, "_ninja_csrf_exempt", False):
        return None
    check = _CsrfCheck()
    request.csrf_processing_done = False
    check.process_request(request)
    if check.process_view(request, lambda r: None, (), {}) is None:
        return None
    return check.reason or "CSRF verification failed"


class StaffOrOwnerSession(SessionAuth):
    """Session auth for browsers; unsafe methods must carry the CSRF token.

    CSRF is checked only for a logged-in session: an anonymous request gets the 401
    it deserves rather than a CSRF complaint.
    """

    def __call__(self, request: HttpRequest):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return None
        reason = _csrf_failure(request)
        if reason:
            raise Forbidden(
                f"CSRF check failed ({reason}): send the csrftoken cookie's value in the "
                "X-CSRFToken header, or use a bearer token"
            )
        return user


def request_actor_label(request: HttpRequest) -> str:
    """Who the audit trail names for this request: the user, and the token if one was used."""
    return actor_label_for(request.user, getattr(request, "api_token", None))


token_auth = TokenAuth()
session_auth = StaffOrOwnerSession()
API_AUTH = [token_auth, session_auth]


def docs_access(view):
    """The OpenAPI schema and Swagger UI: for a logged-in browser or a token with the
    ``read`` scope, like every other route but health. An anonymous browser is sent to
    the login page; an anonymous client asking for the schema gets a 401 naming it."""

    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs):
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            try:
                TokenAuth(ApiToken.Scope.READ).authenticate(request, token.strip())
            except HttpError as exc:
                return JsonResponse({"detail": exc.message}, status=exc.status_code)
            except Forbidden as exc:
                return JsonResponse({"detail": exc.detail}, status=exc.status)
            return view(request, *args, **kwargs)
        if request.path.endswith(".json"):
            return JsonResponse(
                {"detail": "log in or send 'Authorization: Bearer <token>' to read the API"},
                status=401,
            )
        return redirect_to_login(request.get_full_path())

    return guarded
