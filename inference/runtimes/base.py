"""The one interface every runtime implements, and the registry that finds them.

A runtime turns a materialized version folder into a ``LoadedModel``. Runtimes are
registered by dotted path, keyed by ``Framework`` value, and imported on first use, so
importing this module (as the web process may) never imports torch or onnxruntime.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

import numpy as np
from django.conf import settings

from inference.errors import RuntimeUnavailable
from inference.signature import dummy_inputs

BUILTIN_RUNTIMES: dict[str, str] = {
    "onnx": "inference.runtimes.onnx_runtime.OnnxRuntime",
    "torchscript": "inference.runtimes.torch_runtime.TorchScriptRuntime",
    "torch_export": "inference.runtimes.torch_runtime.TorchExportRuntime",
    # Refused before it gets here unless an administrator marked the version trusted.
    "pytorch_pickle": "inference.runtimes.torch_runtime.TorchPickleRuntime",
    # A Hugging Face folder runs when it is a causal language model (transformers).
    "huggingface": "inference.runtimes.llm.CausalLMRuntime",
    # Run by an external provider (modelmgr.providers); the worker proxies generation.
    "provider": "inference.runtimes.provider.ProviderRuntime",
}
# Weights without an architecture: nothing to run.
NO_GRAPH = {"safetensors", "pytorch_state_dict"}


class LoadedModel(ABC):
    """A model ready to serve. ``infer`` may be called from several threads at once."""

    #: the signature requests are checked against (inputs in call order)
    signature: dict
    #: what actually executes it: "CPUExecutionProvider", "cuda:0", ...
    provider: str = "cpu"
    memory_bytes: int = 0
    #: why warm-up was skipped, when it was
    warmup_note: str = ""
    #: why tensor requests (/infer, predict, v2 infer) are refused, when they are
    tensor_refusal: str = ""

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def unload(self) -> None:
        """Release the model's memory; the object is unusable afterwards."""

    def warm_up(self) -> None:
        """Run once on zeros built from the signature (symbolic dims -> 1)."""
        inputs, note = dummy_inputs(self.signature)
        if inputs is None:
            self.warmup_note = note
            return
        self.infer(inputs)


class Runtime(Protocol):
    name: str

    def load(self, model_dir: Path, primary: str, signature: dict, device: str) -> LoadedModel:
        """Load ``model_dir / primary`` (other files of the version lie beside it)."""
        ...


_instances: dict[str, Runtime] = {}
_lock = threading.Lock()


def runtime_registry() -> dict[str, str]:
    """Built-in runtimes plus MODELMGR_WORKER_RUNTIMES ("framework=dotted.path")."""
    registry = dict(BUILTIN_RUNTIMES)
    for item in getattr(settings, "MODELMGR_WORKER_RUNTIMES", []):
        framework, _, path = item.partition("=")
        if framework.strip() and path.strip():
            registry[framework.strip()] = path.strip()
    return registry


def runtime_for(framework: str) -> Runtime:
    """The runtime for a framework, imported (and instantiated) on first use."""
    registry = runtime_registry()
    path = registry.get(framework)
    if path is None:
        if framework in NO_GRAPH:
            raise RuntimeUnavailable(
                f"framework {framework} has no runnable graph; upload ONNX, TorchScript or .pt2"
            )
        raise RuntimeUnavailable(
            f"framework {framework or '(unknown)'} has no runtime in this worker "
            f"(it runs: {', '.join(sorted(registry))})"
        )
    with _lock:
        runtime = _instances.get(path)
        if runtime is None:
            module_name, _, class_name = path.rpartition(".")
            try:
                runtime = getattr(importlib.import_module(module_name), class_name)()
            except (ImportError, AttributeError) as exc:
                raise RuntimeUnavailable(
                    f"the runtime for {framework} ({path}) is not available: {exc}"
                ) from None
            _instances[path] = runtime
    return runtime
