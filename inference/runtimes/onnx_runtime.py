"""ONNX Runtime: one InferenceSession per loaded version.

``get_available_providers()`` describes the build, not the machine (onnxruntime-gpu says
CUDA without a GPU); the provider a session really uses is ``session.get_providers()[0]``.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from inference.device import intra_op_threads
from inference.errors import LoadFailed
from inference.runtimes.base import LoadedModel
from inference.signature import render_shape

# ONNX Runtime type strings -> numpy dtype names
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}
_configured = False


def _ort():
    global _configured
    import onnxruntime as ort

    if not _configured:
        # Without CUDA libraries it prints native errors at each session creation.
        ort.set_default_logger_severity(4)
        gc.freeze()  # the runtime's module objects are permanent (see modelmgr/asgi.py)
        _configured = True
    return ort


class OnnxModel(LoadedModel):
    def __init__(self, session, signature: dict, memory_bytes: int):
        self.session = session
        self.signature = signature
        self.provider = session.get_providers()[0]
        self.memory_bytes = memory_bytes
        self.output_names = [o.name for o in session.get_outputs()]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, results, strict=True))

    def unload(self) -> None:
        self.session = None


class OnnxRuntime:
    name = "onnxruntime"

    def load(self, model_dir: Path, primary: str, signature: dict, device: str) -> OnnxModel:
        """1. Session with CUDA first on a CUDA device (ORT falls back to CPU by itself).
        2. The session's own inputs/outputs are the served signature; a declared signature
           that disagrees with the graph fails the load, naming the difference.
        """
        ort = _ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads()
        options.inter_op_num_threads = 1
        # Spinning threads burn the cores the event loop and other models need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list = ["CPUExecutionProvider"]
        # Only a build with the CUDA provider is asked for it (others warn and ignore it);
        # without CUDA libraries it still falls back to the CPU by itself.
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            index = int(device.partition(":")[2] or 0)
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        session = ort.InferenceSession(str(model_dir / primary), options, providers=providers)
        actual = {
            "inputs": [_entry(item) for item in session.get_inputs()],
            "outputs": [_entry(item) for item in session.get_outputs()],
        }
        problems = _disagreements(signature, actual)
        if problems:
            raise LoadFailed(
                "the declared signature does not match the ONNX graph: " + "; ".join(problems)
            )
        size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
        return OnnxModel(session, actual, size)


def _entry(node) -> dict:
    shape = node.shape
    if shape is not None:
        shape = [d if isinstance(d, int) or d is None else str(d) for d in shape]
    return {"name": node.name, "shape": shape, "dtype": ORT_TYPES.get(node.type)}


def _disagreements(declared: dict, actual: dict) -> list[str]:
    declared_inputs = declared.get("inputs") or []
    if not declared_inputs:
        return []
    have = {item["name"]: item for item in actual["inputs"]}
    problems = []
    names = [item.get("name") for item in declared_inputs]
    if sorted(names) != sorted(have):
        return [f"it declares inputs {names}, the graph takes {list(have)}"]
    for item in declared_inputs:
        real = have[item["name"]]
        if item.get("dtype") and real["dtype"] and item["dtype"] != real["dtype"]:
            problems.append(
                f"input {item['name']!r} is declared {item['dtype']}, "
                f"the graph takes {real['dtype']}"
            )
        want, got = item.get("shape"), real["shape"]
        if want is None or got is None:
            continue
        if len(want) != len(got) or any(
            isinstance(w, int) and isinstance(g, int) and w != g
            for w, g in zip(want, got, strict=False)
        ):
            problems.append(
                f"input {item['name']!r} is declared {render_shape(want)}, "
                f"the graph takes {render_shape(got)}"
            )
    return problems
