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
    # Language models: idle seconds before an unserved, unpinned copy is unloaded
    # (inference.keep_alive; negative = forever). None: not subject to keep-alive.
    keep_alive_s: float | None = None

    @property
    def version_id(self) -> int:
        return self.spec.id

    @property
    def ref(self) -> str:
        return self.spec.ref

    @property
    def signature(self) -> dict:
        return self.model.signature


SHORT_ERROR_HEAD = 160
SHORT_ERROR_TAIL = 400


def short_error(exc: BaseException) -> str:
    """One line for an unexpected exception, with its root cause.

    Runtimes put the cause last: onnxruntime's "[ONNXRuntimeError] : 1 : FAIL :
    /onnxruntime_src/...model.cc:256 onnxruntime::Model::Model(...) Unsupported model IR
    version: 14, max supported IR version: 13". A long message keeps its head and its
    tail, never only the head.
    """
    if isinstance(exc, ModelmgrError):
        return exc.detail
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    if not text:
        return type(exc).__name__
    if len(text) > SHORT_ERROR_HEAD + SHORT_ERROR_TAIL + 5:
        text = f"{text[:SHORT_ERROR_HEAD]} ... {text[-SHORT_ERROR_TAIL:]}"
    return f"{type(exc).__name__}: {text}"
