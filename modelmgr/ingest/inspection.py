"""Dispatch a detected version to its inspector: signature + inspection, no code run."""

from __future__ import annotations

import json
from pathlib import Path

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.detect import Detection
from modelmgr.ingest.incoming import IncomingFile
from modelmgr.ingest.inspect_llm import inspect_llm
from modelmgr.ingest.inspect_onnx import inspect_onnx
from modelmgr.ingest.inspect_pt2 import inspect_pt2
from modelmgr.ingest.inspect_safetensors import inspect_safetensors, read_header, summarize
from modelmgr.ingest.inspect_torch import inspect_state_dict, inspect_torchscript
from modelmgr.models import Framework

MAX_CONFIG_BYTES = 4 * 1024 * 1024
_NOT_INSPECTED = {
    Framework.KERAS: "Keras file: detected, not inspected",
    Framework.TENSORFLOW: "TensorFlow graph: detected, not inspected",
    Framework.SKLEARN: "pickle: stored, never unpickled, not inspected",
    Framework.PYTORCH_PICKLE: "pickled Python object: stored, never unpickled, not inspected",
    Framework.OTHER: "format not recognised: stored as is, not inspected",
}


def inspect_version(detection: Detection, files: list[IncomingFile]) -> tuple[dict, dict]:
    """Return (signature, inspection) for the detected framework of a version."""
    local = {incoming.path: incoming.staged.path for incoming in files}
    sizes = {incoming.path: incoming.staged.size for incoming in files}
    primary = detection.primary_path
    framework = detection.framework
    if framework == Framework.ONNX:
        signature, inspection = inspect_onnx(local[primary], path=primary, version_sizes=sizes)
    elif framework == Framework.SAFETENSORS:
        signature, inspection = inspect_safetensors(local[primary], path=primary)
    elif framework == Framework.TORCHSCRIPT:
        signature, inspection = inspect_torchscript(local[primary], path=primary)
    elif framework == Framework.TORCH_EXPORT:
        signature, inspection = inspect_pt2(local[primary], path=primary)
    elif framework == Framework.PYTORCH_STATE_DICT:
        signature, inspection = inspect_state_dict(local[primary], path=primary)
    elif framework == Framework.HUGGINGFACE:
        signature, inspection = _inspect_huggingface(detection, local)
    else:
        signature, inspection = {}, {"format": framework, "notes": _NOT_INSPECTED[framework]}
        unsafe_globals = detection.kinds[primary].unsafe_globals
        if framework == Framework.PYTORCH_PICKLE and unsafe_globals:
            inspection["pickle_globals"] = unsafe_globals[:50]
    inspection["primary"] = primary
    inspection["unsafe"] = detection.unsafe
    return signature, inspection


def _inspect_huggingface(detection: Detection, local: dict[str, Path]) -> tuple[dict, dict]:
    """config.json fields and the weights' tensors (safetensors headers / state dicts)."""
    if "config.json" not in local:
        raise IngestRejected("a Hugging Face folder needs a config.json at its root")
    config_path = local["config.json"]
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise IngestRejected(f"config.json is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(config_path.read_text("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IngestRejected(f"config.json is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise IngestRejected("config.json is not a JSON object")
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list):
        architectures = [str(architectures)]
    weights = [
        path
        for path in sorted(local)
        if "/" not in path
        and (
            path.endswith(".safetensors")
            or (path.startswith("pytorch_model") and path.endswith(".bin"))
        )
    ]
    tensors: dict[str, dict] = {}
    notes: list[str] = []
    for path in weights:
        kind = detection.kinds[path].framework
        if kind == Framework.SAFETENSORS:
            found, _ = read_header(local[path], path=path)
            tensors.update(found)
        elif kind == Framework.PYTORCH_STATE_DICT:
            _, state = inspect_state_dict(local[path], path=path)
            tensors.update({t["name"]: t for t in state["tensors"]})
        else:
            notes.append(f"{path}: pickled object, never unpickled")
    inspection = {
        "format": "huggingface",
        "architectures": [str(a) for a in architectures],
        "model_type": str(config.get("model_type") or ""),
        "weights": weights,
        "has_tokenizer": any(p.startswith("tokenizer") for p in local),
        **summarize(tensors),
    }
    llm, llm_notes = inspect_llm(
        config,
        local,
        parameter_count=inspection["parameter_count"],
        tensor_dtypes=inspection["dtypes"],
    )
    if llm is not None:
        inspection["llm"] = llm
    notes += llm_notes
    if notes:
        inspection["notes"] = notes
    return {}, inspection
