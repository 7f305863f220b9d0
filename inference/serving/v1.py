"""The v1 predict body formats, as /api/v1/slots/{slot}/predict has always answered them:
JSON, .npy or safetensors in; JSON, or safetensors for ``Accept:
application/x-safetensors``, out. Used by the serving port and the control API's /infer.
"""

from __future__ import annotations

from inference.asgi import JSON_HEADERS, send_bytes
from inference.codec import SAFETENSORS, decode_inputs, encode_json, encode_safetensors
from inference.serving.runner import InferRunner, client_key_of


async def predict(runner: InferRunner, slot: str, scope, body: bytes, send) -> None:
    content_type = accept = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
    answer = await runner.run(
        slot,
        lambda signature: decode_inputs(content_type, body, signature),
        body_size=len(body),
        client_key=client_key_of(scope),
    )
    entry = answer.entry
    if SAFETENSORS in accept:
        return await send_bytes(
            send,
            200,
            encode_safetensors(answer.outputs),
            [
                (b"content-type", SAFETENSORS),
                (b"x-model", entry.ref.encode()),
                (b"x-version-id", str(entry.version_id).encode()),
                (b"x-latency-ms", f"{answer.latency_ms:.4f}".encode()),
            ],
        )
    await send_bytes(
        send,
        200,
        encode_json(
            ref=entry.ref,
            version_id=entry.version_id,
            outputs=answer.outputs,
            latency_ms=answer.latency_ms,
        ),
        JSON_HEADERS,
    )
