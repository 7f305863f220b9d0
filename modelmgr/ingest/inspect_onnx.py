"""ONNX inspection with the protobuf library only (never onnxruntime).

The model is loaded without its external data; every external ``location`` is checked
to be a clean relative path naming a file of the same version, then the checker runs
on an in-memory copy whose external initializers are declared as graph inputs, so it
never opens a file (it would resolve locations against the process's working folder).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import TensorProto

from modelmgr.exceptions import BadPath, IngestRejected
from modelmgr.ingest.onnx_support import onnx_warnings
from modelmgr.ingest.paths import clean_relative_path
from modelmgr.ingest.picklescan import numel

MAX_METADATA_PROPS = 50


def inspect_onnx(local: Path, *, path: str, version_sizes: dict[str, int]) -> tuple[dict, dict]:
    """Return (signature, inspection) for the ONNX file ``path`` of a version.

    1. Parse the protobuf (no external data) -> IngestRejected when it is not ONNX.
    2. Validate external data locations and byte ranges against the version's files.
    3. Run onnx.checker on the in-memory model (external initializers as inputs).
    4. Read inputs (graph inputs that are not initializers), outputs, opsets, producer,
       IR version and the parameter count from initializer dims.
    5. Warn (``warnings``) when the IR version or opset is beyond what the worker's
       onnxruntime loads (ingest.onnx_support): stored all the same, as it may be
       meant for another runtime, but a switch to it would fail.
    """
    try:
        model = onnx.load(str(local), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ValueError...
        raise IngestRejected(f"{path} is not a valid ONNX model: {_short(exc)}") from None
    if not model.HasField("graph"):
        raise IngestRejected(f"{path} is not a valid ONNX model: it has no graph")
    external_files = _check_external_data(model, path=path, version_sizes=version_sizes)
    checker = _run_checker(model, path=path)
    graph = model.graph
    initializer_names = {tensor.name for tensor in graph.initializer}
    signature = {
        "inputs": [_value_info(v) for v in graph.input if v.name not in initializer_names],
        "outputs": [_value_info(v) for v in graph.output],
    }
    inspection = {
        "format": "onnx",
        "ir_version": model.ir_version,
        "opset": {entry.domain or "ai.onnx": entry.version for entry in model.opset_import},
        "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p),
        "graph_name": graph.name,
        "node_count": len(graph.node),
        "parameter_count": sum(numel(list(t.dims)) for t in graph.initializer),
        "external_data": sorted(external_files),
        "checker": checker,
        "metadata": {p.key: p.value for p in model.metadata_props[:MAX_METADATA_PROPS]},
    }
    warnings = onnx_warnings(ir_version=model.ir_version, opsets=inspection["opset"], path=path)
    if warnings:
        inspection["warnings"] = warnings
    return signature, inspection


def _check_external_data(
    model: onnx.ModelProto, *, path: str, version_sizes: dict[str, int]
) -> set[str]:
    folder = posixpath.dirname(path)
    used: set[str] = set()
    for tensor in _all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        try:
            relative = clean_relative_path(location)
        except BadPath as exc:
            raise IngestRejected(
                f"external data {location!r} of tensor {tensor.name!r} escapes the version "
                f"folder: {exc.detail}"
            ) from None
        target = posixpath.join(folder, relative) if folder else relative
        if target not in version_sizes:
            raise IngestRejected(
                f"external data {location!r} of tensor {tensor.name!r} names {target!r}, "
                "which is not a file of this version"
            )
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", version_sizes[target] - offset))
        except ValueError:
            raise IngestRejected(
                f"external data of tensor {tensor.name!r} has a malformed offset or length"
            ) from None
        if offset < 0 or length < 0 or offset + length > version_sizes[target]:
            raise IngestRejected(
                f"external data of tensor {tensor.name!r} reads past the end of {target!r}"
            )
        used.add(target)
    return used


def _run_checker(model: onnx.ModelProto, *, path: str) -> str:
    graph_external = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    total_external = sum(1 for t in _all_tensors(model) if t.data_location == TensorProto.EXTERNAL)
    if total_external > len(graph_external):
        return "skipped: external data outside the main graph's initializers"
    candidate = model
    if graph_external:
        candidate = onnx.ModelProto()
        candidate.CopyFrom(model)
        external_names = {t.name for t in graph_external}
        kept = [t for t in candidate.graph.initializer if t.name not in external_names]
        declared = {v.name for v in candidate.graph.input}
        for tensor in graph_external:
            if tensor.name not in declared:
                candidate.graph.input.append(
                    onnx.helper.make_tensor_value_info(
                        tensor.name, tensor.data_type, list(tensor.dims)
                    )
                )
        del candidate.graph.initializer[:]
        candidate.graph.initializer.extend(kept)
    try:
        onnx.checker.check_model(candidate)
    except Exception as exc:
        raise IngestRejected(f"{path} is not a valid ONNX model: {_short(exc)}") from None
    return "passed"


def _all_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[TensorProto]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for subgraph in attribute.graphs:
            yield from _graph_tensors(subgraph)


def _value_info(value: onnx.ValueInfoProto) -> dict:
    entry: dict = {"name": value.name, "shape": None, "dtype": None}
    if value.type.HasField("tensor_type"):
        tensor_type = value.type.tensor_type
        entry["dtype"] = dtype_name(tensor_type.elem_type)
        if tensor_type.HasField("shape"):
            entry["shape"] = [_dim(d) for d in tensor_type.shape.dim]
    return entry


def _dim(dim) -> int | str | None:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param") and dim.dim_param:
        return dim.dim_param
    return None


def dtype_name(elem_type: int) -> str | None:
    """numpy-style name ("float32") of an ONNX element type."""
    if elem_type == TensorProto.UNDEFINED:
        return None
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:
        try:
            return TensorProto.DataType.Name(elem_type).lower()
        except ValueError:
            return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
