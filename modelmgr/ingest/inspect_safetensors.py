"""safetensors inspection: the header parsed and validated by hand, data never read.

Layout: 8-byte little-endian header length N, N bytes of JSON, then the data region.
The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
relative to the data region, plus an optional "__metadata__" of strings.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.picklescan import numel

MAX_HEADER_BYTES = 100_000_000
MAX_LISTED_TENSORS = 2000
# safetensors dtype -> (numpy-style name, bits per element)
DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 8),
    "U8": ("uint8", 8),
    "I8": ("int8", 8),
    "U16": ("uint16", 16),
    "I16": ("int16", 16),
    "U32": ("uint32", 32),
    "I32": ("int32", 32),
    "U64": ("uint64", 64),
    "I64": ("int64", 64),
    "F16": ("float16", 16),
    "BF16": ("bfloat16", 16),
    "F32": ("float32", 32),
    "F64": ("float64", 64),
    "C64": ("complex64", 64),
    "F8_E4M3": ("float8_e4m3fn", 8),
    "F8_E5M2": ("float8_e5m2", 8),
    "F8_E8M0": ("float8_e8m0fnu", 8),
    "F4": ("float4_e2m1fn", 4),
    "F6_E2M3": ("float6_e2m3fn", 6),
    "F6_E3M2": ("float6_e3m2fn", 6),
}


def read_header(local: Path, *, path: str) -> tuple[dict[str, dict], dict[str, str]]:
    """Return ({name: {"dtype", "shape", "begin", "end"}}, metadata) after validating.

    1. The length prefix fits the file and MAX_HEADER_BYTES.
    2. The header is a JSON object without duplicate keys.
    3. Every tensor has a known dtype, a shape of non-negative ints and offsets whose
       span equals shape x itemsize.
    4. Sorted by offset, tensors tile the data region exactly: no gaps, no overlaps,
       and the last one ends where the file ends.
    """
    size = local.stat().st_size
    with local.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise _bad(path, "the file is shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES or length > size - 8:
            raise _bad(path, f"the header length {length} runs past the end of the file")
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(path, f"the header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _bad(path, "__metadata__ must map strings to strings")
    tensors = {name: _tensor(path, name, spec) for name, spec in header.items()}
    data_size = size - 8 - length
    position = 0
    for name, tensor in sorted(
        tensors.items(), key=lambda item: (item[1]["begin"], item[1]["end"])
    ):
        if tensor["begin"] != position:
            problem = "overlaps another tensor" if tensor["begin"] < position else "leaves a gap"
            raise _bad(path, f"tensor {name!r} {problem} in the data region")
        position = tensor["end"]
    if position != data_size:
        raise _bad(
            path,
            f"the tensors cover {position} bytes but the data region holds "
            f"{data_size} (truncated or padded file)",
        )
    return tensors, metadata


def inspect_safetensors(local: Path, *, path: str) -> tuple[dict, dict]:
    tensors, metadata = read_header(local, path=path)
    return {}, {"format": "safetensors", **summarize(tensors), "metadata": metadata}


def summarize(tensors: dict[str, dict]) -> dict:
    listed = [
        {"name": name, "shape": t["shape"], "dtype": t["dtype"]}
        for name, t in sorted(tensors.items())
    ]
    return {
        "tensor_count": len(listed),
        "parameter_count": sum(numel(t["shape"]) for t in tensors.values()),
        "dtypes": sorted({t["dtype"] for t in tensors.values()}),
        "tensors": listed[:MAX_LISTED_TENSORS],
        "tensors_truncated": len(listed) > MAX_LISTED_TENSORS,
    }


def _tensor(path: str, name: str, spec) -> dict:
    if not isinstance(spec, dict):
        raise _bad(path, f"tensor {name!r} is not described by an object")
    dtype = spec.get("dtype")
    if dtype not in DTYPES:
        raise _bad(path, f"tensor {name!r} has an unknown dtype {dtype!r}")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _bad(path, f"tensor {name!r} has an invalid shape {shape!r}")
    offsets = spec.get("data_offsets")
    if (
        not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        )
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise _bad(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    numpy_name, bits = DTYPES[dtype]
    expected_bits = numel(shape) * bits
    if expected_bits != (offsets[1] - offsets[0]) * 8:
        raise _bad(
            path,
            f"tensor {name!r} spans {offsets[1] - offsets[0]} bytes but its "
            f"shape {shape} of {dtype} needs {expected_bits / 8:g}",
        )
    return {"dtype": numpy_name, "shape": shape, "begin": offsets[0], "end": offsets[1]}


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _bad(path: str, reason: str) -> IngestRejected:
    return IngestRejected(f"{path} is not a valid safetensors file: {reason}")
