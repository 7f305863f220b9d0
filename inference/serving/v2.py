"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST API) on the serving port.

A model is a slot; its one version is the version the slot serves now (``name@version``
gives the version string). Implemented: server metadata, health, model metadata (from
the served signature) and readiness, and inference with JSON tensors and the binary
tensor data extension (``Inference-Header-Content-Length``: the request's and response's
first N bytes are the JSON header, the tensors' raw bytes follow in order).
Errors are ``{"error": "..."}`` (the protocol's) with ``detail`` beside it.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from inference.asgi import predict_body_limit_check, read_body, send_bytes, send_json
from inference.codec import json_values
from inference.pool import PoolEntry
from inference.serving.runner import InferRunner
from inference.signature import check_inputs, np_dtype
from inference.worker import Worker
from modelmgr.exceptions import ModelmgrError, NotFound, WorkerUnavailable

DATATYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
V2_TYPES = {dtype: name for name, dtype in DATATYPES.items()}
# The platform names Triton reports, for the frameworks it knows; others keep ours.
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
HEADER_LENGTH = b"inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]


class V2BadRequest(ModelmgrError):
    status = 400


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


def version_of(entry: PoolEntry) -> str:
    return entry.ref.rsplit("@", 1)[-1]


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[tuple[str, bool]] | None  # requested (name, binary), None = all
    binary_default: bool


def _tensor_from(item: dict, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """One input tensor of the request, and the offset after its binary bytes."""
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise V2BadRequest("every input needs a name")
    datatype = item.get("datatype")
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise V2BadRequest(
            f"input {name!r}: datatype {datatype!r} is not supported "
            f"(use one of {', '.join(DATATYPES)})"
        )
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise V2BadRequest(f"input {name!r}: shape must be a list of non-negative integers")
    count = int(np.prod(shape, dtype=np.int64))
    size = (item.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        expected = count * dtype.itemsize
        if size != expected:
            raise V2BadRequest(
                f"input {name!r}: binary_data_size is {size}, but {datatype} {shape} "
                f"takes {expected} bytes"
            )
        if offset + size > len(binary):
            raise V2BadRequest(f"input {name!r}: the body ends before its {size} binary bytes")
        array = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape)
        return array, offset + size
    if "data" not in item:
        raise V2BadRequest(f"input {name!r} has neither data nor parameters.binary_data_size")
    try:
        values = np.asarray(item["data"])
    except ValueError:
        values = None
    if values is None or (values.size and values.dtype.kind not in "biuf"):
        raise V2BadRequest(f"input {name!r}: data must be an array of numbers")
    if dtype.kind in "iub" and values.dtype.kind == "f":
        raise V2BadRequest(f"input {name!r}: {datatype} data must be integers, got floats")
    if values.size != count:
        raise V2BadRequest(
            f"input {name!r}: shape {shape} holds {count} values, data has {values.size}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype, copy=False).reshape(shape), offset


def parse_infer_request(body: bytes, header_length: int | None) -> InferRequest:
    """The request's JSON header and tensors (400 naming what is wrong)."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise V2BadRequest(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    head = body if header_length is None else body[:header_length]
    binary = memoryview(body)[len(head) :]
    try:
        payload = json.loads(head)
    except ValueError as exc:
        raise V2BadRequest(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise V2BadRequest("the inference request must be a JSON object")
    items = payload.get("inputs")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise V2BadRequest('the inference request needs "inputs": [{name, datatype, shape, data}]')
    inputs, offset = {}, 0
    for item in items:
        array, offset = _tensor_from(item, binary, offset)
        if item["name"] in inputs:
            raise V2BadRequest(f"input {item['name']!r} is given twice")
        inputs[item["name"]] = array
    if offset != len(binary):
        raise V2BadRequest(
            f"the body has {len(binary) - offset} bytes of binary data no input claims"
        )
    parameters = payload.get("parameters") or {}
    binary_default = bool(parameters.get("binary_data_output", False))
    outputs = None
    if payload.get("outputs") is not None:
        if not isinstance(payload["outputs"], list):
            raise V2BadRequest('"outputs" must be a list of {name, parameters}')
        outputs = []
        for item in payload["outputs"]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise V2BadRequest("every requested output needs a name")
            binary_flag = (item.get("parameters") or {}).get("binary_data", binary_default)
            outputs.append((item["name"], bool(binary_flag)))
    request_id = payload.get("id")
    return InferRequest(
        id=str(request_id) if request_id is not None else None,
        inputs=inputs,
        outputs=outputs,
        binary_default=binary_default,
    )


def encode_infer_response(
    *, slot: str, entry: PoolEntry, request: InferRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body and the length of its JSON header when binary tensors follow."""
    wanted = request.outputs
    if wanted is None:
        wanted = [(name, request.binary_default) for name in outputs]
    unknown = [name for name, _ in wanted if name not in outputs]
    if unknown:
        raise V2BadRequest(
            f"unknown output {', '.join(map(repr, unknown))} (the model gives {', '.join(outputs)})"
        )
    tensors, chunks = [], []
    for name, binary in wanted:
        array = np.asarray(outputs[name])
        datatype = V2_TYPES.get(array.dtype)
        if datatype is None:
            raise ModelmgrError(f"output {name!r} has dtype {array.dtype}, which v2 cannot carry")
        tensor = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            data = np.ascontiguousarray(array).tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            tensor["data"] = json_values(array.reshape(-1))
        tensors.append(tensor)
    response = {"model_name": slot, "model_version": version_of(entry), "outputs": tensors}
    if request.id is not None:
        response["id"] = request.id
    head = json.dumps(response, allow_nan=False).encode()
    if not chunks:
        return head, None
    return b"".join([head, *chunks]), len(head)


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

        answer = await self.runner.run(slot, decode, body_size=len(body))
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


def decompress(body: bytes, encoding: bytes) -> bytes:
    """tritonclient may gzip or deflate a request (request_compression_algorithm)."""
    try:
        if encoding == b"gzip":
            return gzip.decompress(body)
        if encoding == b"deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error) as exc:
        raise V2BadRequest(f"the {encoding.decode()} body cannot be decompressed: {exc}") from None
    if encoding not in (b"", b"identity"):
        raise V2BadRequest(f"Content-Encoding {encoding.decode()!r} is not supported")
    return body
