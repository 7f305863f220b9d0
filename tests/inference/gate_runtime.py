"""A real runtime for tests, driven by its own artifact (registered for the framework
"test_gate" through MODELMGR_WORKER_RUNTIMES). Never a stand-in for onnxruntime or torch:
it exists to make loads hang, fail or overlap on cue.

The primary file is JSON: {"gate": path, "fail": str, "fail_infer": str, "scale": float,
"delay_ms": float (each inference takes that long), "fail_on_worker": name (the load
fails only in the worker of that MODELMGR_WORKER_NAME)}.
``load`` first touches ``<gate>.<pid>.<thread>.waiting`` (so a test can see the loads that
are waiting at once), then waits until the gate file exists, then fails with ``fail`` or
returns a model computing y = x * scale. Unloaded models are listed in UNLOADED.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from inference.runtimes.base import LoadedModel

FRAMEWORK = "test_gate"
DOTTED = "tests.inference.gate_runtime.GateRuntime"
SIGNATURE = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": ["batch", 4], "dtype": "float32"}],
}
UNLOADED: list[str] = []


def wait_for_file(path: str | None, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while path and not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


class GateModel(LoadedModel):
    def __init__(self, config: dict, signature: dict):
        self.config = config
        self.signature = signature or SIGNATURE
        self.provider = "gate"
        self.memory_bytes = 1024

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.config.get("fail_infer"):
            raise RuntimeError(self.config["fail_infer"])
        if self.config.get("delay_ms"):
            time.sleep(self.config["delay_ms"] / 1000)  # a model this slow, on cue
        return {"y": inputs["x"] * np.float32(self.config.get("scale", 2.0))}

    def unload(self) -> None:
        UNLOADED.append(self.config.get("name", ""))


class GateRuntime:
    name = "gate"

    def load(self, model_dir: Path, primary: str, signature: dict, device: str) -> GateModel:
        config = json.loads((model_dir / primary).read_text())
        gate = config.get("gate")
        if gate:
            Path(f"{gate}.{os.getpid()}.{threading.get_ident()}.waiting").touch()
        wait_for_file(gate)
        if config.get("fail"):
            raise RuntimeError(config["fail"])
        failing = config.get("fail_on_worker")  # one worker of several (MODELMGR_WORKER_NAME)
        if failing and os.environ.get("MODELMGR_WORKER_NAME") == failing:
            raise RuntimeError(f"this load fails on worker {failing}")
        return GateModel(config, signature)
