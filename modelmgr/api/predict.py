"""/slots/{slot}/predict: run inference on whatever version the slot serves.

Robots should call the same path on the worker's serving port (inference.serving), which
skips this process; this one serves browser sessions and robots that still call the web.

The body goes to the worker as bytes and its answer comes back as bytes: the tensors are
never parsed in the web process. Async, so a slow model never ties up Django's one
thread for sync views.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema
from pydantic import Field

from modelmgr.api.auth import TokenAuth, session_auth
from modelmgr.deploy.predict import PASSED_HEADERS, body_limit_check, slot_predict
from modelmgr.exceptions import Forbidden
from modelmgr.models import ApiToken

# Predicting changes nothing: a token with the read scope may call it although it is a POST.
router = Router(tags=["predict"], auth=[TokenAuth(scope=ApiToken.Scope.READ), session_auth])


class PredictOut(Schema):
    model: str = Field(description="name@version that answered")
    version_id: int
    outputs: dict = Field(description="output name -> nested lists")
    latency_ms: float = Field(description="the model's own time in the worker")
    shapes: dict = Field(description="output name -> shape")


class PredictError(Schema):
    detail: str


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"inputs": {"type": "object"}}},
                "example": {"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}},
            },
            "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
            "application/x-safetensors": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


@router.post(
    "/slots/{slot}/predict",
    response={
        200: PredictOut,
        403: PredictError,
        404: PredictError,
        413: PredictError,
        415: PredictError,
        422: PredictError,
        503: PredictError,
    },
    summary="Run inference on the version a slot serves",
    openapi_extra=_BODY_DOC,
)
async def predict(request: HttpRequest, slot: str):
    """JSON ``{"inputs": {name: nested lists}}``, or one .npy array (the model's single
    input) or a .safetensors file (tensors named like the inputs) as the raw body.
    ``Accept: application/x-safetensors`` returns the outputs as safetensors.

    Answers with the outputs, the ``model`` (name@version) that computed them and its
    latency. The worker's errors come back with their status (404 slot not served,
    422 bad inputs, 503 restoring, with Retry-After); a worker that is down is a 503
    naming it, at once. A token limited to other slots (``create_token --slots``) gets
    a 403 naming the slot.

    Robots: the worker's serving port answers the same path and formats without this
    hop (``MODELMGR_SERVE_PORT``, the web port + 2 under ``runall``).
    """
    api_token = getattr(request, "api_token", None)
    if api_token is not None and not api_token.allows_slot(slot):
        raise Forbidden(api_token.slot_refusal(slot))
    length = _content_length(request)
    body_limit_check(length)
    # read(), not .body: DATA_UPLOAD_MAX_MEMORY_SIZE is for forms, tensors may be bigger.
    body = request.read(settings.MODELMGR_PREDICT_MAX_BYTES + 1)
    body_limit_check(len(body))
    answer = await slot_predict(
        slot=slot,
        body=body,
        content_type=request.content_type or "",
        accept=request.headers.get("accept", ""),
        client_key=request.headers.get("x-client-key", ""),
    )
    response = HttpResponse(
        answer.content,
        status=answer.status_code,
        content_type=answer.headers.get("content-type", "application/json"),
    )
    for name in PASSED_HEADERS:
        if name in answer.headers:
            response[name] = answer.headers[name]
    return response
