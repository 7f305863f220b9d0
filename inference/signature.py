"""Signatures on the worker: effective signature, warm-up input, request validation.

A signature is ``{"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}`` as stored in
ModelVersion.signature: shapes hold ints (fixed), strings (symbolic) or None (unknown),
and a shape or dtype may be None altogether (TorchScript does not record them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.errors import InvalidInput

# Numbers sent as JSON to an input whose dtype nobody recorded become float32: what
# nearly every float model wants, and a clear dtype error from the runtime otherwise.
DEFAULT_JSON_DTYPE = np.dtype("float32")


def np_dtype(name: str | None) -> np.dtype | None:
    if not name:
        return None
    try:
        return np.dtype(name)
    except TypeError:
        return None


def render_shape(shape: list | None) -> str:
    if shape is None:
        return "any shape"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def effective_signature(
    signature: dict | None, *, metadata: dict | None = None, contract: dict | None = None
) -> dict:
    """The signature the worker serves and warms up with.

    1. Start from the version's signature.
    2. An input without a shape or dtype takes it from ``metadata["inputs"]`` (same name,
       else same position), then from the slot contract's inputs.
    3. With no inputs at all, the metadata's inputs are used, else the contract's.
    """
    signature = signature or {}
    hints = [list((metadata or {}).get("inputs") or []), list((contract or {}).get("inputs") or [])]
    hints = [[h for h in group if isinstance(h, dict) and h.get("name")] for group in hints]
    inputs = [dict(item) for item in signature.get("inputs") or []]
    if not inputs:
        inputs = [dict(item) for item in (hints[0] or hints[1])]
    for position, item in enumerate(inputs):
        for group in hints:
            hint = next((h for h in group if h["name"] == item.get("name")), None)
            if hint is None and len(group) == len(inputs):
                hint = group[position]
            if hint is None:
                continue
            if item.get("shape") is None and hint.get("shape") is not None:
                item["shape"] = list(hint["shape"])
            if not item.get("dtype") and hint.get("dtype"):
                item["dtype"] = hint["dtype"]
    return {"inputs": inputs, "outputs": [dict(o) for o in signature.get("outputs") or []]}


def dummy_inputs(signature: dict) -> tuple[dict[str, np.ndarray] | None, str]:
    """Zeros for every input (symbolic/unknown dims -> 1), or (None, why not)."""
    inputs = signature.get("inputs") or []
    if not inputs:
        return None, "warm-up skipped: the signature names no inputs"
    arrays = {}
    for item in inputs:
        dtype = np_dtype(item.get("dtype"))
        if item.get("shape") is None or dtype is None:
            return None, (
                f"warm-up skipped: input {item.get('name')!r} has no recorded "
                f"{'shape' if item.get('shape') is None else 'dtype'} (set metadata.inputs "
                "on the version or a contract on the slot)"
            )
        shape = tuple(d if isinstance(d, int) and d >= 0 else 1 for d in item["shape"])
        arrays[item["name"]] = np.zeros(shape, dtype=dtype)
    return arrays, ""


def check_inputs(signature: dict, arrays: dict[str, np.ndarray], *, strict_dtype: bool) -> None:
    """Raise InvalidInput naming the input and the expected vs given shape/dtype.

    Symbolic dims must agree across inputs (every ``batch`` is the same number).
    """
    declared = signature.get("inputs") or []
    if not declared:
        return
    names = [item["name"] for item in declared]
    missing = [n for n in names if n not in arrays]
    unknown = [n for n in arrays if n not in names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing input " + ", ".join(repr(n) for n in missing))
        if unknown:
            parts.append("unknown input " + ", ".join(repr(n) for n in unknown))
        raise InvalidInput(f"{'; '.join(parts)} (the model takes {', '.join(names)})")
    bound: dict[str, int] = {}
    for item in declared:
        array = arrays[item["name"]]
        expected_dtype = np_dtype(item.get("dtype"))
        if strict_dtype and expected_dtype is not None and array.dtype != expected_dtype:
            raise InvalidInput(
                f"input {item['name']!r} expects dtype {expected_dtype.name}, "
                f"got {array.dtype.name}"
            )
        shape = item.get("shape")
        if shape is None:
            continue
        problem, because = len(shape) != array.ndim, ""
        for dim, size in zip(shape, array.shape, strict=False):
            if problem:
                break
            if isinstance(dim, int) and dim >= 0:
                problem = dim != size
            elif isinstance(dim, str):
                problem = bound.setdefault(dim, size) != size
                because = f" with {dim}={bound[dim]} as in the other inputs" if problem else ""
        if problem:
            raise InvalidInput(
                f"input {item['name']!r} expects shape {render_shape(shape)}{because} "
                f"({item.get('dtype') or 'any dtype'}), got "
                f"{render_shape(list(array.shape))} ({array.dtype.name})"
            )


def arrays_from_json(signature: dict, inputs: Any) -> dict[str, np.ndarray]:
    """Nested lists -> arrays of the signature's dtypes (no lossy float -> int casts)."""
    if not isinstance(inputs, dict) or not inputs:
        raise InvalidInput('the body must be {"inputs": {name: nested lists}}')
    dtypes = {item["name"]: np_dtype(item.get("dtype")) for item in signature.get("inputs") or []}
    arrays = {}
    for name, value in inputs.items():
        try:
            array = np.asarray(value)
        except ValueError:
            array = None
        if array is None or array.dtype.kind not in "biuf":
            raise InvalidInput(f"input {name!r} is not a rectangular array of numbers")
        expected = dtypes.get(name) or DEFAULT_JSON_DTYPE
        if expected.kind in "iub" and array.dtype.kind == "f":
            raise InvalidInput(f"input {name!r} expects {expected.name} values, got floats")
        if expected.kind == "b" and array.dtype.kind != "b":
            raise InvalidInput(f"input {name!r} expects booleans, got {array.dtype.name}")
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below
            array = array.astype(expected, copy=False)
        # 1e400 parses as infinity and NaN is a token Python's json accepts: neither is a
        # number a model should be fed from JSON (a float16 input also overflows here).
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidInput(
                f"input {name!r} has values that are not finite {array.dtype.name} numbers "
                "(NaN, infinity, or beyond the dtype's range)"
            )
        arrays[name] = array
    return arrays


def contract_mismatches(signature: dict, contract: dict | None) -> list[str]:
    """How a version's signature breaks a slot contract (names, dtypes, fixed dims)."""
    problems: list[str] = []
    for side in ("inputs", "outputs"):
        wanted = (contract or {}).get(side) or []
        have = {item.get("name"): item for item in (signature or {}).get(side) or []}
        for spec in wanted:
            name = spec.get("name")
            item = have.get(name)
            if item is None:
                problems.append(f"{side[:-1]} {name!r} is missing")
                continue
            if spec.get("dtype") and item.get("dtype") and spec["dtype"] != item["dtype"]:
                problems.append(
                    f"{side[:-1]} {name!r} is {item['dtype']}, the contract wants {spec['dtype']}"
                )
            want_shape, have_shape = spec.get("shape"), item.get("shape")
            if want_shape is None or have_shape is None:
                continue
            clash = len(want_shape) != len(have_shape) or any(
                isinstance(w, int) and isinstance(h, int) and w != h
                for w, h in zip(want_shape, have_shape, strict=False)
            )
            if clash:
                problems.append(
                    f"{side[:-1]} {name!r} has shape {render_shape(have_shape)}, "
                    f"the contract wants {render_shape(want_shape)}"
                )
    return problems


def batch_dim_problem(signature: dict | None) -> str:
    """Why this signature cannot be batched along its first dimension, or ""."""
    signature = signature or {}
    items = [("input", i) for i in signature.get("inputs") or []] + [
        ("output", o) for o in signature.get("outputs") or []
    ]
    if not signature.get("inputs") or not signature.get("outputs"):
        return "its signature does not record its inputs and outputs"
    for kind, item in items:
        shape = item.get("shape")
        name = item.get("name") or "?"
        if not isinstance(shape, list) or not shape:
            return f"{kind} {name!r} has no recorded shape"
        first = shape[0]
        if isinstance(first, int) and first >= 0:
            return (
                f"{kind} {name!r} has a fixed first dimension ({first}); batching needs a "
                "dynamic batch dimension (a name or null) first in every input and output"
            )
    return ""
