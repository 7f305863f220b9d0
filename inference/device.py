"""Which device the worker runs on, and how much memory it may fill there."""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

import psutil
from django.conf import settings

MB = 1024 * 1024


@dataclass(frozen=True)
class DeviceInfo:
    device: str  # "cpu" | "cuda:N"
    name: str

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def _cuda_driver_present() -> bool:
    """Cheap pre-check so a CPU-only machine never pays for importing torch at start."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


class DeviceUnavailable(Exception):
    """MODELMGR_WORKER_DEVICE names a device this machine does not have."""


def detect_device(setting: str | None = None) -> DeviceInfo:
    """1. "cpu" is taken as given.
    2. "cuda:N" must exist: a worker asked for a GPU never quietly serves from the CPU
       (DeviceUnavailable names what is missing).
    3. "auto": cuda:0 when a driver is present and torch.cuda really works, else cpu.
    """
    choice = (setting or settings.MODELMGR_WORKER_DEVICE or "auto").strip().lower()
    if choice == "cpu":
        return DeviceInfo("cpu", _cpu_name())
    if choice != "auto" and not (choice == "cuda" or choice.startswith("cuda:")):
        raise DeviceUnavailable(
            f"MODELMGR_WORKER_DEVICE={choice!r}: expected 'auto', 'cpu' or 'cuda:N'"
        )
    index_text = choice.partition(":")[2] or "0"
    if choice != "auto" and not index_text.isdigit():
        raise DeviceUnavailable(f"MODELMGR_WORKER_DEVICE={choice!r}: N in 'cuda:N' is a number")
    if choice == "auto" and not _cuda_driver_present():
        return DeviceInfo("cpu", _cpu_name())
    try:
        import torch
    except ImportError:
        torch = None
    available = torch is not None and torch.cuda.is_available()
    if choice == "auto":
        if not available:
            return DeviceInfo("cpu", _cpu_name())
        return DeviceInfo("cuda:0", torch.cuda.get_device_name(0))
    index = int(index_text)
    if not available:
        raise DeviceUnavailable(
            f"MODELMGR_WORKER_DEVICE={choice}: torch sees no CUDA device here"
            " (no driver, or a CPU-only torch build); use 'auto' or 'cpu'"
        )
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(
            f"MODELMGR_WORKER_DEVICE={choice}: this machine has"
            f" {torch.cuda.device_count()} CUDA device(s)"
        )
    return DeviceInfo(f"cuda:{index}", torch.cuda.get_device_name(index))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"cpu ({os.cpu_count()} cores)"


def intra_op_threads() -> int:
    configured = settings.MODELMGR_WORKER_INTRA_OP_THREADS
    if configured > 0:
        return configured
    return 2 if (os.cpu_count() or 1) >= 4 else 1


@dataclass(frozen=True)
class MemoryReading:
    kind: str  # "gpu" | "ram"
    budget_bytes: int
    used_bytes: int

    @property
    def free_bytes(self) -> int:
        return max(0, self.budget_bytes - self.used_bytes)

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "budget_bytes": self.budget_bytes,
            "used_bytes": self.used_bytes,
            "free_bytes": self.free_bytes,
        }


def memory_reading(device: DeviceInfo, *, models_bytes: int) -> MemoryReading:
    """GPU: the device's own total/free (other processes count too). CPU: the RAM budget
    (MODELMGR_WORKER_RAM_BUDGET_MB, default half the RAM) against what models hold."""
    if device.is_cuda:
        import torch

        free, total = torch.cuda.mem_get_info(device.device)
        return MemoryReading("gpu", int(total), int(total - free))
    budget_mb = settings.MODELMGR_WORKER_RAM_BUDGET_MB
    budget = budget_mb * MB if budget_mb > 0 else psutil.virtual_memory().total // 2
    return MemoryReading("ram", int(budget), int(models_bytes))
