"""Profiling a version on the worker: warm latency per batch size, throughput, memory.

The profile runs on a copy of the version loaded for it alone (never the entry a slot
serves, which keeps answering its requests meanwhile), and is kept gentle:

- one profile at a time per worker (``ProfileBusy``, 409, names the one running);
- memory admission as for a load, but without evicting anything: the copy's estimate
  must fit in what is free now ("needs X MB, Y MB free of Z MB budget", 507);
- bounded work: at most ``iterations`` timed runs per batch size and ``max_seconds``
  in all; after each run it sleeps as long as the run took, so it holds at most about
  half of one core (or of the device) while serving goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from inference.asgi import json_payload, read_body, send_json
from inference.errors import InvalidInput
from inference.memory import LoadMeter
from inference.profile_steps import batch_inputs, is_dynamic_batch, latency_row, load_bounded
from inference.runtimes.base import runtime_for
from inference.versions import VersionSpec, version_spec_get
from modelmgr.exceptions import ModelmgrError, NotDeployable

log = logging.getLogger("inference")
DYNAMIC_BATCH_SIZES = (1, 2, 4, 8)
MAX_BATCH = 256
DEFAULT_ITERATIONS, MAX_ITERATIONS = 30, 1000
DEFAULT_SECONDS, MAX_SECONDS = 10.0, 120.0
WARMUP_RUNS = 2

Emit = Callable[[dict], None]


class ProfileBusy(ModelmgrError):
    status = 409


def _bounded(value, default, low, high, name: str, kind=int):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidInput(f"{name} must be a number from {low} to {high}, got {value!r}")
    return kind(value)


class Profiler:
    """The worker's one profiling lane; ``start`` is called on the event loop (cheap
    checks, so a refusal is a status code), ``run`` in a control thread."""

    def __init__(self, worker):
        self.worker = worker
        self._busy = threading.Lock()
        self.running: dict | None = None

    def start(self, payload: dict) -> dict:
        """Validate the request and take the lane, or raise (409 while one runs)."""
        version_id = payload.get("version_id")
        if not isinstance(version_id, int) or isinstance(version_id, bool):
            raise InvalidInput('send {"version_id": <int>, ...}')
        sizes = payload.get("batch_sizes")
        if sizes is not None and (
            not isinstance(sizes, list)
            or not sizes
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)
            or not all(1 <= s <= MAX_BATCH for s in sizes)
        ):
            raise InvalidInput(f"batch_sizes must be a list of integers from 1 to {MAX_BATCH}")
        request = {
            "version_id": version_id,
            "batch_sizes": sorted(set(sizes)) if sizes else None,
            "iterations": _bounded(
                payload.get("iterations"), DEFAULT_ITERATIONS, 1, MAX_ITERATIONS, "iterations"
            ),
            "max_seconds": _bounded(
                payload.get("max_seconds"),
                DEFAULT_SECONDS,
                0.1,
                MAX_SECONDS,
                "max_seconds",
                float,
            ),
        }
        if not self._busy.acquire(blocking=False):
            running = self.running or {}
            raise ProfileBusy(
                f"a profile of {running.get('ref', 'another version')} is running since "
                f"{running.get('since', '?')}; one profile at a time, try again when it ends"
            )
        self.running = {"version_id": version_id, "ref": f"version {version_id}", "since": _now()}
        return request

    def finish(self) -> None:
        self.running = None
        self._busy.release()

    async def handle(self, scope, receive, send, in_thread) -> None:
        """``POST /profile``: NDJSON events (``loading``, one ``batch`` per batch size,
        then ``result`` with the profile). A refusal before the load (busy, bad input,
        not deployable, no memory) is a plain JSON error with its status instead."""
        request = self.start(json_payload(await read_body(receive)))
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(event: dict) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        def work() -> None:
            try:
                emit({"event": "result", "ok": True, "profile": self.run(request, emit)})
            except ModelmgrError as exc:
                emit({"event": "result", "ok": False, "status": exc.status, "detail": exc.detail})
            except Exception as exc:
                log.exception("profile of version %s crashed", request["version_id"])
                emit({"event": "result", "ok": False, "status": 500, "detail": str(exc)})
            finally:
                self.finish()

        task = asyncio.ensure_future(in_thread(work))
        task.add_done_callback(lambda _: events.put_nowait(None))
        first = await events.get()
        if first and first.get("event") == "result" and not first["ok"]:
            return await send_json(send, first["status"], {"detail": first["detail"]})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/x-ndjson"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        event = first
        while event is not None:
            line = json.dumps(event).encode() + b"\n"
            await send({"type": "http.response.body", "more_body": True, "body": line})
            event = await events.get()
        await send({"type": "http.response.body", "body": b""})

    def run(self, request: dict, emit: Emit) -> dict:
        """1. Admit: deployable, a tensor model, its estimate fits in free memory.
        2. Load a copy of its own and warm it up (measured like any load).
        3. Per batch size: WARMUP_RUNS untimed runs, then timed runs with a pause.
        4. Unload the copy and give its reservation back, whatever happened."""
        pool = self.worker.pool
        spec = version_spec_get(version_id=request["version_id"])
        self.running["ref"] = spec.ref
        problem = spec.deployable_problem()
        if problem:
            raise NotDeployable(problem)
        if spec.provider is not None or spec.llm_config:
            raise NotDeployable(
                f"{spec.ref} is a language model: profiling measures tensor models "
                "(its measured tokens/s are in its usage statistics)"
            )
        runtime_for(spec.framework)
        signature = spec.signature_for(None)
        sizes = self._sizes(spec, signature, request["batch_sizes"])
        reserved = pool.reserve_free(spec)
        emit({"event": "loading", "ref": spec.ref, "reserved_bytes": reserved})
        try:
            meter = LoadMeter(pool.device)
            entry = load_bounded(pool, spec, signature)
        finally:
            pool.unreserve(reserved)
        try:
            if entry.model.tensor_refusal:
                raise NotDeployable(f"{spec.ref}: {entry.model.tensor_refusal}")
            rows = self._measure(entry, signature, sizes, request, emit, meter)
            measured = meter.delta()
        finally:
            entry.model.unload()
        return {
            "version_id": spec.id,
            "ref": spec.ref,
            "device": self.worker.device.device,
            "device_name": self.worker.device.name,
            "worker_id": self.worker.worker_id,
            "runtime": entry.runtime,
            "provider": entry.model.provider,
            "dynamic_batch": is_dynamic_batch(signature),
            "load_ms": round(entry.load_ms, 3),
            "memory_bytes": int(entry.memory_bytes),
            "measured_bytes": int(max(measured, entry.measured_bytes or 0)),
            "results": rows,
            "duration_s": round(sum(r["seconds"] for r in rows), 3),
            "at": _now(),
        }

    def _sizes(self, spec: VersionSpec, signature: dict, asked: list[int] | None) -> list[int]:
        if is_dynamic_batch(signature):
            return asked or list(DYNAMIC_BATCH_SIZES)
        if asked and asked != [1]:
            raise InvalidInput(
                f"{spec.ref} takes a fixed batch (its inputs' first dimension is fixed): "
                f"only batch size 1 can be profiled, not {asked}"
            )
        return [1]

    def _measure(self, entry, signature, sizes, request, emit, meter) -> list[dict]:
        rng = np.random.default_rng(0)
        deadline = time.monotonic() + request["max_seconds"]
        # Each batch size gets an equal share of what time is left, so the last one is
        # measured too when the first ones are slow.
        rows = []
        for index, batch in enumerate(sizes):
            inputs = batch_inputs(signature, batch, rng)
            for _ in range(WARMUP_RUNS):
                entry.model.infer(inputs)
            share = (deadline - time.monotonic()) / (len(sizes) - index)
            stop = time.monotonic() + max(share, 0.0)
            latencies: list[float] = []
            started = time.monotonic()
            while len(latencies) < request["iterations"]:
                began = time.perf_counter()
                entry.model.infer(inputs)
                took = time.perf_counter() - began
                latencies.append(took * 1000)
                if time.monotonic() >= stop:
                    break
                time.sleep(took)  # leave as much time to serving as the run took
            row = latency_row(batch, latencies, time.monotonic() - started)
            rows.append(row)
            emit({"event": "batch", "done": index + 1, "of": len(sizes), **row})
        return rows


def _now() -> str:
    return datetime.now(tz=UTC).isoformat()
