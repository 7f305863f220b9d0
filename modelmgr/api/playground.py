"""The chat playground's relay (modelmgr.deploy.llm_relay): for logged-in browsers only.

``POST /api/v1/playground/chat/completions`` and ``/api/v1/playground/completions`` take
the OpenAI request body and answer exactly what the worker's OpenAI route answers (SSE
when ``stream`` is true). A session must send its CSRF token (X-CSRFToken). Robots call
the same routes on the worker's serving port with a token; this one is not for them,
so it stays out of the OpenAPI document.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import Router

from modelmgr.api.auth import session_auth
from modelmgr.deploy.llm_relay import llm_relay

router = Router(tags=["playground"], auth=[session_auth])


async def _relay(request: HttpRequest, kind: str):
    relayed = await llm_relay(kind=kind, body=request.body)
    if relayed.status >= 400 or not relayed.content_type.startswith("text/event-stream"):
        body = b"".join([chunk async for chunk in relayed.chunks])
        response = HttpResponse(body, status=relayed.status, content_type=relayed.content_type)
    else:
        response = StreamingHttpResponse(
            relayed.chunks, status=relayed.status, content_type=relayed.content_type
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
    if relayed.retry_after:
        response["Retry-After"] = relayed.retry_after
    return response


@router.post("/playground/chat/completions", include_in_schema=False, url_name="playground_chat")
async def playground_chat(request: HttpRequest):
    return await _relay(request, "chat")


@router.post("/playground/completions", include_in_schema=False, url_name="playground_completion")
async def playground_completion(request: HttpRequest):
    return await _relay(request, "completion")
