"""Tensors of the Open Inference Protocol (v2): the request's JSON header and binary
tensor data in, the response's out.

With the binary tensor data extension a body is the JSON header (its length in the
``Inference-Header-Content-Length`` header) followed by each binary tensor's raw
little-endian, row-major bytes, in the order of the tensors that declare
``parameters.binary_data_size``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass

import numpy as np

from inference.codec import json_values
from inference.entry import PoolEntry
from modelmgr.exceptions import ModelmgrError

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


class V2BadRequest(ModelmgrError):
    status = 400


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
        array = values.astype(dtype, copy=False).reshape(shape)
    # As on v1 (inference.signature): 1e400 parses as infinity and NaN is a token Python's
    # json accepts; neither is a number to feed a model from JSON.
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise V2BadRequest(
            f"input {name!r} has values that are not finite {datatype} numbers "
            "(NaN, infinity, or beyond the datatype's range)"
        )
    return array, offset


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
