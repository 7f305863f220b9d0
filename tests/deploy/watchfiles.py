"""A real TorchScript model that fails on some inputs, for health-watch tests.

``forward`` raises when any input value exceeds ``threshold``: the worker's warm-up on
zeros passes (a switch to it succeeds), then real traffic above the threshold fails in
the model itself, as a bad release would.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tests.inference.support import registered
from tests.registry.factories import make_version

SIGNATURE = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
}
LOW = [[0.1, 0.1, 0.1, 0.1]]  # below every threshold: never fails
HIGH = [[1.0, 2.0, 3.0, 4.0]]  # fails on a version built with threshold 0.5


def build_failing_torchscript(path: Path, *, threshold: float, seed: int = 0) -> Path:
    import torch

    class FailsAbove(torch.nn.Module):
        def __init__(self, threshold: float):
            super().__init__()
            self.threshold = threshold
            self.linear = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool((x > self.threshold).any()):
                raise RuntimeError("input above the threshold this release cannot handle")
            return self.linear(x)

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(FailsAbove(threshold).eval()).save(str(path))
    return path


def failing_version(owner, tmp_path: Path, *, version: str, threshold: float, seed: int = 0):
    """A torchscript version of model ``svc`` that fails for inputs above ``threshold``."""
    path = tmp_path / "built" / f"svc-{version}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = build_failing_torchscript(path, threshold=threshold, seed=seed).read_bytes()
    return make_version(
        registered(owner, "svc"),
        version,
        files={"model.pt": data},
        framework="torchscript",
        signature=SIGNATURE,
    )
