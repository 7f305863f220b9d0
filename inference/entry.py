"""A loaded model in the pool, and the states it goes through."""

from __future__ import annotations

from dataclasses import dataclass

from inference.runtimes.base import LoadedModel
from inference.versions import VersionSpec
from modelmgr.exceptions import ModelmgrError

READY, DRAINING, UNLOADING, UNLOADED = "ready", "draining", "unloading", "unloaded"


@dataclass(eq=False)
class PoolEntry:
    spec: VersionSpec
    model: LoadedModel
    runtime: str
    load_ms: float
    warmup_ms: float
    memory_bytes: int  # what the pool counts against its budget (may be an estimate)
    loaded_at: float
    last_used: float
    pinned: bool = False
    in_flight: int = 0
    state: str = READY
    # Running mean of the model's own time; short models run on the event loop itself.
    avg_ms: float = float("inf")
    inline: bool = False
    # What warm-up showed of a signature the file does not record (inference.observe),
    # written to the registry by the control thread.
    observed_signature: dict | None = None
    # Growth of the process (RSS, or CUDA allocated on a GPU) across load and warm-up.
    measured_bytes: int | None = None
    signature_recorded: bool = False

    @property
    def version_id(self) -> int:
        return self.spec.id

    @property
    def ref(self) -> str:
        return self.spec.ref

    @property
    def signature(self) -> dict:
        return self.model.signature


def short_error(exc: BaseException) -> str:
    if isinstance(exc, ModelmgrError):
        return exc.detail
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__
