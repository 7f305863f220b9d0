"""Measured memory: what the worker really holds, not what its artifacts weigh.

The pool budgets loads with estimates (a file's size x a factor, a declared min VRAM);
/status used to show that sum as "memory in use" (5.6 KB while the process held about
420 MB). These readings are measured: the process's resident set (RSS), the CUDA
allocator's allocated and reserved bytes on a GPU, and per model the growth of one of
those across its load and warm-up.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from inference.device import DeviceInfo, MemoryReading

_process = psutil.Process()


def process_rss_bytes() -> int:
    return int(_process.memory_info().rss)


def cuda_bytes(device: DeviceInfo) -> dict[str, int]:
    """The CUDA caching allocator's allocated and reserved bytes on the worker's device."""
    if not device.is_cuda:
        return {}
    import torch  # the worker's device is CUDA: torch is loaded already

    return {
        "cuda_allocated_bytes": int(torch.cuda.memory_allocated(device.device)),
        "cuda_reserved_bytes": int(torch.cuda.memory_reserved(device.device)),
    }


class LoadMeter:
    """How much one load (and its warm-up) grew the process: CUDA allocated bytes on a
    GPU, RSS on the CPU. Loads running side by side share the process, so each delta
    may include some of another's: it is a measurement, not an exact attribution."""

    def __init__(self, device: DeviceInfo):
        self.device = device
        self.started = time.monotonic()
        self.before = self._now()

    def _now(self) -> int:
        if self.device.is_cuda:
            return cuda_bytes(self.device)["cuda_allocated_bytes"]
        return process_rss_bytes()

    def delta(self) -> int:
        return max(0, self._now() - self.before)


def memory_status(device: DeviceInfo, reading: MemoryReading) -> dict[str, Any]:
    """The worker's memory for /status.

    ``used_bytes`` / ``budget_bytes`` stay the pool's accounting (what a load is fitted
    against; on a CPU an estimate, now also ``estimated_bytes``); ``measured_bytes`` is
    what the page shows as in use: the device's used memory on a GPU (measured by the
    driver), the process's RSS on the CPU.
    """
    rss = process_rss_bytes()
    status = reading.as_dict()
    status["process_rss_bytes"] = rss
    status.update(cuda_bytes(device))
    if reading.kind == "gpu":
        status["measured_bytes"] = reading.used_bytes
        status["estimated_bytes"] = None
    else:
        status["measured_bytes"] = rss
        status["estimated_bytes"] = reading.used_bytes
    return status
