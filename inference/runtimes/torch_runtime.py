"""torch runtimes: TorchScript (torch.jit.load), torch.export (.pt2) and, for versions an
administrator trusted, pickled modules. Imported on first use only (torch is heavy).
"""

from __future__ import annotations

import gc
import threading
import warnings
from pathlib import Path

import numpy as np

from inference.device import intra_op_threads
from inference.errors import LoadFailed
from inference.runtimes.base import LoadedModel

_setup_lock = threading.Lock()
_configured = False


def _torch():
    global _configured
    import torch

    with _setup_lock:
        if not _configured:
            # A process-wide filter: warnings.catch_warnings is not thread-safe and loads
            # run in parallel threads.
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning
            )
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
            torch.set_num_threads(intra_op_threads())
            gc.freeze()  # torch's module objects are permanent (see modelmgr/asgi.py)
            _configured = True
    return torch


class TorchModel(LoadedModel):
    def __init__(self, module, signature: dict, device: str, memory_bytes: int):
        self.module = module
        self.signature = signature
        self.device = device
        self.memory_bytes = memory_bytes
        self.provider = _module_device(module, device)
        self.input_names = [item["name"] for item in signature.get("inputs") or []]
        self.output_names = [item["name"] for item in signature.get("outputs") or []]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = _torch()
        names = self.input_names or list(inputs)
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])).to(self.device) for n in names]
        with torch.inference_mode():
            result = self.module(*args)
        return self._outputs(result, torch)

    def _outputs(self, result, torch) -> dict[str, np.ndarray]:
        if isinstance(result, dict):
            items = list(result.items())
        elif isinstance(result, list | tuple):
            names = (
                self.output_names
                if len(self.output_names) == len(result)
                else [f"output_{i}" for i in range(len(result))]
            )
            items = list(zip(names, result, strict=True))
        else:
            items = [(self.output_names[0] if len(self.output_names) == 1 else "output", result)]
        outputs = {}
        for name, value in items:
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"output {name!r} is a {type(value).__name__}, not a tensor")
            value = value.detach()
            if value.dtype == torch.bfloat16:  # numpy has no bfloat16
                value = value.float()
            outputs[str(name)] = value.cpu().numpy()
        return outputs

    def unload(self) -> None:
        self.module = None
        gc.collect()
        if self.device.startswith("cuda"):
            _torch().cuda.empty_cache()


def _module_device(module, fallback: str) -> str:
    for tensor in _tensors(module):
        return str(tensor.device)
    return fallback


def _tensors(module):
    try:
        yield from module.parameters()
        yield from module.buffers()
    except (AttributeError, RuntimeError):
        return


def _parameter_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(module))


class _TorchRuntime:
    name = "torch"

    def load(self, model_dir: Path, primary: str, signature: dict, device: str) -> TorchModel:
        """1. Build the module on the device (_build).
        2. Memory: torch.cuda.memory_allocated delta on a GPU, parameter bytes on CPU."""
        torch = _torch()
        is_cuda = device.startswith("cuda")
        before = torch.cuda.memory_allocated(device) if is_cuda else 0
        module = self._build(torch, model_dir / primary, device)
        params = _parameter_bytes(module)
        # Parallel loads share the allocator, so a delta is at least the parameters.
        used = max(params, torch.cuda.memory_allocated(device) - before) if is_cuda else params
        return TorchModel(module, signature, device, used)

    def _build(self, torch, path: Path, device: str):
        raise NotImplementedError


class TorchScriptRuntime(_TorchRuntime):
    name = "torchscript"

    def _build(self, torch, path: Path, device: str):
        return torch.jit.load(str(path), map_location=device).eval()


class TorchExportRuntime(_TorchRuntime):
    name = "torch_export"

    def _build(self, torch, path: Path, device: str):
        program = torch.export.load(str(path))
        if device != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, device)
        return program.module()  # already in inference form; eval() is not supported


class TorchPickleRuntime(_TorchRuntime):
    """Unpickles a full module: runs code from the file, hence only for trusted versions."""

    name = "pytorch_pickle"

    def _build(self, torch, path: Path, device: str):
        module = torch.load(str(path), map_location=device, weights_only=False)
        if not isinstance(module, torch.nn.Module):
            raise LoadFailed(f"{path.name} unpickles to a {type(module).__name__}, not a module")
        return module.eval()
