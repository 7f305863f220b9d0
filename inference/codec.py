"""Request and response bodies of /infer: JSON, .npy and safetensors."""

from __future__ import annotations

import io
import json

import numpy as np
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from inference.errors import InvalidInput, UnsupportedMedia
from inference.signature import arrays_from_json, check_inputs

JSON = b"application/json"
NPY = b"application/x-npy"
SAFETENSORS = b"application/x-safetensors"
# curl -d and some robot HTTP stacks label a JSON body as a form or plain text.
JSON_TYPES = (b"", JSON, b"text/plain", b"application/x-www-form-urlencoded")


def media_type(header: bytes) -> bytes:
    return header.split(b";", 1)[0].strip().lower()


def decode_inputs(content_type: bytes, body: bytes, signature: dict) -> dict[str, np.ndarray]:
    """Arrays checked against the signature (names, rank, fixed dims, dtype).

    JSON numbers take the signature's dtype; binary bodies must carry it exactly.
    """
    media = media_type(content_type)
    if media in JSON_TYPES:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise InvalidInput('the body must be {"inputs": {name: nested lists}}')
        arrays = arrays_from_json(signature, payload.get("inputs"))
        check_inputs(signature, arrays, strict_dtype=False)
        return arrays
    if media == NPY:
        declared = signature.get("inputs") or []
        if len(declared) > 1:
            names = ", ".join(item["name"] for item in declared)
            raise InvalidInput(
                f"application/x-npy carries one array but this model takes {len(declared)} "
                f"inputs ({names}); send JSON or application/x-safetensors"
            )
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidInput(f"the body is not a .npy array: {exc}") from None
        if not isinstance(array, np.ndarray):
            raise InvalidInput("the body is not a .npy array (an .npz archive?)")
        arrays = {declared[0]["name"] if declared else "input": array}
        check_inputs(signature, arrays, strict_dtype=True)
        return arrays
    if media == SAFETENSORS:
        try:
            arrays = safetensors_load(body)
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise InvalidInput(f"the body is not a safetensors file: {exc}") from None
        check_inputs(signature, arrays, strict_dtype=True)
        return arrays
    raise UnsupportedMedia(
        f"Content-Type {media.decode(errors='replace')} is not accepted; use application/json, "
        "application/x-npy or application/x-safetensors"
    )


# JSON has no NaN or infinity (Python's json writes bare NaN tokens that strict parsers
# refuse), so non-finite outputs are sent as these strings, as JavaScript and pandas read them.
NON_FINITE = (("NaN", np.isnan), ("Infinity", np.isposinf), ("-Infinity", np.isneginf))


def json_values(array: np.ndarray):
    """Nested lists of the array, with non-finite floats as "NaN"/"Infinity"/"-Infinity"."""
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return array.tolist()
    values = array.astype(object)
    for text, test in NON_FINITE:
        values[test(array)] = text
    return values.tolist()


def encode_json(
    *, ref: str, version_id: int, outputs: dict[str, np.ndarray], latency_ms: float
) -> bytes:
    return json.dumps(
        {
            "model": ref,
            "version_id": version_id,
            "outputs": {name: json_values(array) for name, array in outputs.items()},
            "latency_ms": round(latency_ms, 4),
            "shapes": {name: list(array.shape) for name, array in outputs.items()},
        },
        allow_nan=False,
    ).encode()


def encode_safetensors(outputs: dict[str, np.ndarray]) -> bytes:
    return safetensors_save({name: np.ascontiguousarray(a) for name, a in outputs.items()})
