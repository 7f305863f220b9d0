"""torch.export ``.pt2`` inspection: the serialized ExportedProgram is plain JSON.

Layout (torch 2.13, schema 8.x): ``<name>/archive_format`` = "pt2",
``<name>/models/model.json`` = {"graph_module": {"graph": {"tensor_values": ...},
"signature": {"input_specs", "output_specs"}, "module_call_graph": [...]},
"range_constraints", "schema_version", "torch_version", "opset_version"}, weights under
``<name>/data/weights/``. The signature's ``user_input``/``user_output`` specs name the
tensors whose meta (``sizes``, ``dtype``) give shapes and dtypes.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.picklescan import numel
from modelmgr.ingest.torchzip import open_archive

MAX_PROGRAM_BYTES = 64 * 1024 * 1024
# torch/_export/serde/schema.py ScalarType
SCALAR_TYPES = {
    1: "uint8",
    2: "int8",
    3: "int16",
    4: "int32",
    5: "int64",
    6: "float16",
    7: "float32",
    8: "float64",
    9: "complex32",
    10: "complex64",
    11: "complex128",
    12: "bool",
    13: "bfloat16",
    28: "uint16",
    29: "float8_e4m3fn",
    30: "float8_e5m2",
    31: "float8_e4m3fnuz",
    32: "float8_e5m2fnuz",
    33: "float8_e8m0fnu",
    34: "uint32",
    35: "uint64",
}
_SYMBOL_RE = re.compile(r"^Symbol\('([^']+)'")
_PARAMETER_KINDS = ("parameter", "buffer", "tensor_constant")


def inspect_pt2(local: Path, *, path: str) -> tuple[dict, dict]:
    """Return (signature, inspection) of a ``.pt2`` archive.

    1. Find the program JSON (``models/model.json``, else the only ``models/*.json``).
    2. User inputs/outputs from the graph signature; names from the root module's
       ``forward_arg_names`` when they line up, else the graph's tensor names.
    3. Shapes from tensor meta: ints, or the symbol of a dynamic dim ("s31").
    4. Parameter count from the parameter/buffer/constant tensors' static sizes.
    """
    try:
        archive = open_archive(local, label=path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise IngestRejected(f"{path} is not a valid .pt2 archive: {exc}") from None
    with archive.zf:
        programs = sorted(
            n for n in archive.names if n.startswith("models/") and n.endswith(".json")
        )
        if not programs:
            raise IngestRejected(f"{path} is not a valid .pt2 archive: no models/*.json")
        record = "models/model.json" if "models/model.json" in programs else programs[0]
        try:
            program = json.loads(archive.read(record, limit=MAX_PROGRAM_BYTES))
        except (ValueError, RecursionError, zipfile.BadZipFile, OSError) as exc:
            raise IngestRejected(f"{path} is not a valid .pt2 archive: {exc}") from None
    try:
        return _read_program(program, record)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, StopIteration) as exc:
        raise IngestRejected(
            f"{path} is not a valid .pt2 archive: unexpected program layout ({exc!r})"
        ) from None


def _read_program(program: dict, record: str) -> tuple[dict, dict]:
    graph_module = program["graph_module"]
    graph = graph_module["graph"]
    values = graph["tensor_values"]
    specs = graph_module["signature"]
    user_inputs = [
        _tensor_name(spec["user_input"]["arg"])
        for spec in specs["input_specs"]
        if "user_input" in spec
    ]
    user_outputs = [
        _tensor_name(spec["user_output"]["arg"])
        for spec in specs["output_specs"]
        if "user_output" in spec
    ]
    arg_names = _forward_arg_names(graph_module)
    if len(arg_names) != len(user_inputs):
        arg_names = [name or f"input_{i}" for i, name in enumerate(user_inputs)]
    signature = {
        "inputs": [
            _entry(display, name, values)
            for display, name in zip(arg_names, user_inputs, strict=True)
        ],
        "outputs": [
            _entry(name or f"output_{i}", name, values) for i, name in enumerate(user_outputs)
        ],
    }
    parameter_count = 0
    for spec in specs["input_specs"]:
        kind = next(iter(spec))
        if kind in _PARAMETER_KINDS:
            meta = values.get(spec[kind]["arg"]["name"], {})
            shape = [_dim(d) for d in meta.get("sizes", [])]
            if all(isinstance(d, int) for d in shape):
                parameter_count += numel(shape)
    schema = program.get("schema_version") or {}
    inspection = {
        "format": "torch_export",
        "program": record,
        "schema_version": f"{schema.get('major')}.{schema.get('minor')}",
        "torch_version": program.get("torch_version"),
        "opset": program.get("opset_version") or {},
        "parameter_count": parameter_count,
        "dynamic_dims": {
            name: {"min": bounds.get("min_val"), "max": bounds.get("max_val")}
            for name, bounds in (program.get("range_constraints") or {}).items()
        },
    }
    return signature, inspection


def _forward_arg_names(graph_module: dict) -> list[str]:
    for entry in graph_module.get("module_call_graph") or []:
        if entry.get("fqn") == "" and entry.get("signature"):
            return list(entry["signature"].get("forward_arg_names") or [])
    return []


def _tensor_name(arg: dict) -> str | None:
    tensor = arg.get("as_tensor")
    return tensor["name"] if tensor else None


def _entry(display: str, tensor_name: str | None, values: dict) -> dict:
    meta = values.get(tensor_name) if tensor_name else None
    if not meta:
        return {"name": display, "shape": None, "dtype": None}
    return {
        "name": display,
        "shape": [_dim(d) for d in meta.get("sizes", [])],
        "dtype": SCALAR_TYPES.get(meta.get("dtype")),
    }


def _dim(size: dict) -> int | str | None:
    if "as_int" in size:
        return int(size["as_int"])
    expr = size.get("as_expr")
    if isinstance(expr, dict):
        text = str(expr.get("expr_str", ""))
        match = _SYMBOL_RE.match(text)
        return match[1] if match else (text or None)
    if isinstance(expr, str):
        return expr
    return None
