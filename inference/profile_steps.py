"""The steps of a profile (inference.profile): which batch sizes, the inputs for one,
a load that cannot hang the profiling lane, and the figures of one batch size."""

from __future__ import annotations

import threading

import numpy as np

from inference.errors import InvalidInput, LoadTimeout
from inference.signature import np_dtype
from inference.versions import VersionSpec


def is_dynamic_batch(signature: dict) -> bool:
    """Every input's first dimension is symbolic or unknown (a batch the caller picks)."""
    inputs = signature.get("inputs") or []
    if not inputs:
        return False
    for item in inputs:
        shape = item.get("shape")
        if not shape or (isinstance(shape[0], int) and shape[0] >= 0):
            return False
    return True


def batch_inputs(signature: dict, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs of ``batch`` rows (other symbolic dims -> 1); ints are zeros."""
    arrays = {}
    for item in signature.get("inputs") or []:
        dtype, shape = np_dtype(item.get("dtype")), item.get("shape")
        if dtype is None or shape is None:
            raise InvalidInput(
                f"input {item.get('name')!r} has no recorded shape or dtype: nothing to "
                "profile with (set metadata.inputs on the version)"
            )
        dims = [d if isinstance(d, int) and d >= 0 else 1 for d in shape]
        if dims and not (isinstance(shape[0], int) and shape[0] >= 0):
            dims[0] = batch
        if np.issubdtype(dtype, np.floating):
            arrays[item["name"]] = rng.standard_normal(dims).astype(dtype)
        else:
            arrays[item["name"]] = np.zeros(dims, dtype=dtype)
    return arrays


def load_bounded(pool, spec: VersionSpec, signature: dict):
    """The detached load, waited for at most the pool's load timeout: a hung load must
    not hold the one profiling lane forever. A late result is unloaded on arrival."""
    done = threading.Event()
    box: dict = {}
    lock = threading.Lock()

    def load() -> None:
        try:
            entry = pool.load_detached(spec, signature)
        except BaseException as exc:
            box["error"] = exc
        else:
            with lock:
                late = box.get("abandoned", False)
                box["entry"] = entry
            if late:
                entry.model.unload()
        done.set()

    threading.Thread(target=load, name=f"profile-load-{spec.id}", daemon=True).start()
    if not done.wait(pool.load_timeout):
        with lock:
            if "entry" not in box:
                box["abandoned"] = True
                raise LoadTimeout(f"load of {spec.ref} timed out after {pool.load_timeout:g} s")
    done.wait()
    if "error" in box:
        raise box["error"]
    return box["entry"]


def latency_row(batch: int, latencies: list[float], seconds: float) -> dict:
    p50, p95, p99 = (float(v) for v in np.percentile(latencies, [50, 95, 99]))
    mean = float(np.mean(latencies))
    return {
        "batch_size": batch,
        "iterations": len(latencies),
        "p50_ms": round(p50, 4),
        "p95_ms": round(p95, 4),
        "p99_ms": round(p99, 4),
        "mean_ms": round(mean, 4),
        # Inferences (rows) per second of compute, the pauses left out.
        "throughput_per_s": round(batch * 1000 / mean, 2) if mean > 0 else None,
        "seconds": round(seconds, 3),
    }
