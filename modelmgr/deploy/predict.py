"""The predict proxy: a request body goes to the worker's /infer/{slot} as bytes, and the
worker's answer comes back as bytes (no JSON parsing or re-encoding of tensors here)."""

from __future__ import annotations

import httpx
from django.conf import settings

from modelmgr.deploy.fleet import Member
from modelmgr.deploy.spread import spread
from modelmgr.exceptions import ModelmgrError, UploadTooLarge

BODY_TYPES = {
    "application/json": "application/json",
    # curl -d and some robot HTTP stacks label a JSON body as a form or as plain text.
    "application/x-www-form-urlencoded": "application/json",
    "text/plain": "application/json",
    "application/x-npy": "application/x-npy",
    "application/x-safetensors": "application/x-safetensors",
}
# Response headers of the worker worth keeping: when to retry a 503 while it restores, and
# the model and latency of a binary (safetensors) answer.
PASSED_HEADERS = ("retry-after", "x-model", "x-version-id", "x-latency-ms")


class UnsupportedBody(ModelmgrError):
    status = 415


def body_type(content_type: str | None) -> str:
    """The media type the worker gets; 415 for anything it does not take."""
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media not in BODY_TYPES:
        raise UnsupportedBody(
            f"Content-Type {media!r} is not accepted; send application/json "
            '({"inputs": {name: nested lists}}), application/x-npy or application/x-safetensors'
        )
    return BODY_TYPES[media]


def body_limit_check(length: int | None) -> None:
    limit = settings.MODELMGR_PREDICT_MAX_BYTES
    if length is not None and length > limit:
        raise UploadTooLarge(
            f"request body of {length} bytes exceeds the {limit} byte limit "
            "for predictions (MODELMGR_PREDICT_MAX_BYTES)"
        )


async def slot_predict(
    *, slot: str, body: bytes, content_type: str, accept: str = "", client_key: str = ""
) -> httpx.Response:
    """Run ``body`` through the model serving ``slot``; the worker's response, untouched.

    The worker answers 200 with ``{"model": "name@version", "version_id", "outputs",
    "latency_ms", "shapes"}`` (or, for ``Accept: application/x-safetensors``, the outputs
    as safetensors with X-Model / X-Version-Id / X-Latency-Ms headers), or 404/422/503
    with ``{"detail"}``. With several workers it goes to the one serving the slot with
    the fewest requests in flight (modelmgr.deploy.spread); one that cannot be reached
    or answers 503 hands the request to the next. The last one that cannot be reached
    raises WorkerUnavailable (503) at once.
    """
    media = body_type(content_type)

    async def send(member: Member, last: bool):
        url = member.control_url
        spread.in_flight[url] += 1
        try:
            answer = await member.client.infer(
                slot, body=body, content_type=media, accept=accept, client_key=client_key
            )
        finally:
            spread.in_flight[url] -= 1
        # Restoring or shutting down: another one answers.
        return None if answer.status_code == 503 and not last else answer

    return await spread.first_answer(slot, send)
