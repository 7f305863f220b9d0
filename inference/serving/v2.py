"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST API) on the serving port.

A model is a slot; its one version is the version the slot serves now (``name@version``
gives the version string). Implemented: server metadata, health, model metadata (from
the served signature) and readiness, and inference with JSON tensors and the binary
tensor data extension (inference.serving.v2_codec).
Errors are ``{"error": "..."}`` (the protocol's) with ``detail`` beside it.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from inference.asgi import predict_body_limit_check, read_body, send_bytes, send_json
from inference.pool import PoolEntry
from inference.serving.runner import InferRunner, client_key_of
from inference.serving.v2_codec import (
    V2_TYPES,
    InferRequest,
    V2BadRequest,
    decompress,
    encode_infer_response,
    parse_infer_request,
    version_of,
)
from inference.signature import check_inputs, np_dtype
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError, NotFound, WorkerUnavailable

# The platform names Triton reports, for the frameworks it knows; others keep ours.
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
HEADER_LENGTH = b"inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]


class V2MethodNotAllowed(ModelmgrError):
    status = 405


def server_version() -> str:
    try:
        return metadata.version("modelmgr")
    except metadata.PackageNotFoundError:
        return "0"


def v2_datatype(dtype: str | None) -> str:
    # No recorded dtype: JSON numbers become float32 (inference.signature), so FP32.
    found = np_dtype(dtype)
    return V2_TYPES.get(found, "FP32") if found is not None else "FP32"


def v2_shape(shape: list | None) -> list[int]:
    # -1 for a dynamic (symbolic or unknown) dim; an unrecorded shape is one unknown dim.
    if shape is None:
        return [-1]
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


class V2:
    def __init__(self, worker: Worker, runner: InferRunner):
        self.worker = worker
        self.runner = runner

    async def health(self, method: str, path: str, send) -> None:
        """/v2/health/live and /ready: no token (probes). Not ready is a 4xx, as the
        protocol says, with the reason."""
        if method != "GET":
            raise V2MethodNotAllowed(f"use GET for {path}")
        if path == "/v2/health/live":
            return await send_json(send, 200, {"live": True})
        if path == "/v2/health/ready":
            if not self.worker.ready:
                raise V2BadRequest(f"not ready: {self.worker.not_ready_detail}")
            return await send_json(send, 200, {"ready": True})
        raise NotFound(f"no such endpoint: {path}")

    async def handle(self, scope, receive, send, tokens) -> None:
        """/v2 and /v2/models/{slot}[/versions/{version}][/ready|/infer]."""
        path, method = scope["path"], scope["method"]
        parts = path.strip("/").split("/")
        if parts == ["v2"]:
            await tokens.authorize(scope["headers"])
            self.need(method, "GET", path)
            return await send_json(
                send,
                200,
                {"name": "modelmgr", "version": server_version(), "extensions": EXTENSIONS},
            )
        if len(parts) < 3 or parts[1] != "models" or not parts[2]:
            await tokens.authorize(scope["headers"])
            raise NotFound(f"no such endpoint: {path}")
        slot, rest, version = parts[2], parts[3:], None
        await tokens.authorize(scope["headers"], slot=slot)
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or not rest[1]:
                raise NotFound(f"no such endpoint: {path}")
            version, rest = rest[1], rest[2:]
        if rest == []:
            self.need(method, "GET", path)
            return await send_json(send, 200, self.model_metadata(slot, version))
        if rest == ["ready"]:
            self.need(method, "GET", path)
            entry = self.served(slot, version)
            return await send_json(
                send, 200, {"name": slot, "version": version_of(entry), "ready": True}
            )
        if rest == ["infer"]:
            self.need(method, "POST", path)
            return await self.infer(slot, version, scope, receive, send)
        raise NotFound(f"no such endpoint: {path}")

    @staticmethod
    def need(method: str, wanted: str, path: str) -> None:
        if method != wanted:
            raise V2MethodNotAllowed(f"use {wanted} for {path}")

    def served(self, slot: str, version: str | None) -> PoolEntry:
        """The entry serving ``slot``; 404 when none, or when it is not ``version``."""
        route = self.worker.router.table.get(slot)
        if route is None:
            raise NotFound(f"model {slot!r} is not served (no slot of that name is loaded)")
        if version is not None and version != version_of(route.entry):
            raise NotFound(
                f"model {slot!r} serves version {version_of(route.entry)!r} "
                f"({route.entry.ref}), not {version!r}"
            )
        return route.entry

    def model_metadata(self, slot: str, version: str | None) -> dict:
        entry = self.served(slot, version)
        signature = entry.signature

        def tensors(side: str) -> list[dict]:
            return [
                {
                    "name": item.get("name"),
                    "datatype": v2_datatype(item.get("dtype")),
                    "shape": v2_shape(item.get("shape")),
                }
                for item in signature.get(side) or []
            ]

        return {
            "name": slot,
            "versions": [version_of(entry)],
            "platform": PLATFORMS.get(entry.spec.framework, entry.spec.framework),
            "inputs": tensors("inputs"),
            "outputs": tensors("outputs"),
        }

    async def infer(self, slot: str, version: str | None, scope, receive, send) -> None:
        if not self.worker.ready:
            raise WorkerUnavailable(self.worker.not_ready_detail)
        self.served(slot, version)  # 404 before reading the body
        predict_body_limit_check(scope["headers"])
        header_length, encoding = None, b""
        for name, value in scope["headers"]:
            if name == HEADER_LENGTH:
                try:
                    header_length = int(value)
                except ValueError:
                    raise V2BadRequest("Inference-Header-Content-Length is not a number") from None
            elif name == b"content-encoding":
                encoding = value.strip().lower()
        body = decompress(await read_body(receive), encoding)
        parsed: list[InferRequest] = []

        def decode(signature: dict) -> dict[str, np.ndarray]:
            request = parse_infer_request(body, header_length)
            check_inputs(signature, request.inputs, strict_dtype=True)
            parsed.append(request)
            return request.inputs

        answer = await self.runner.run(
            slot, decode, body_size=len(body), client_key=client_key_of(scope)
        )
        content, head_length = encode_infer_response(
            slot=slot, entry=answer.entry, request=parsed[0], outputs=answer.outputs
        )
        if head_length is None:
            return await send_bytes(send, 200, content, [(b"content-type", b"application/json")])
        await send_bytes(
            send,
            200,
            content,
            [
                (b"content-type", b"application/octet-stream"),
                (HEADER_LENGTH, str(head_length).encode()),
            ],
        )
