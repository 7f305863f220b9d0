"""The worker: pool + routing table + usage counters, with one-step methods.

The server and the management command call these; tests call them directly. Control
operations (switch, reconcile, load, unload) are serialized by ``control_lock``; serving
never takes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from inference.arms import ArmStats, route_arms
from inference.cache import PruneReport, cache_prune
from inference.device import DeviceInfo, detect_device
from inference.drift.monitor import DriftMonitor
from inference.fit import environment, fit_preview
from inference.keep_alive import KEEP_ALIVE_POLL_S, expiry, is_language_model, keep_alive_sweep
from inference.memory import memory_status
from inference.observe import signatures_record
from inference.phases import TwoPhase
from inference.pins import pins_run
from inference.pool import ModelPool, PoolEntry, short_error
from inference.reconcile import reconcile_run
from inference.registration import Identity, heartbeat_loop, worker_signed_off
from inference.router import Router
from inference.runtimes.base import runtime_for
from inference.stats import UsageRecorder
from inference.switch import Emit, switch_apply
from inference.versions import version_spec_get
from modelmgr.exceptions import NotDeployable

log = logging.getLogger("inference")


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


@contextlib.contextmanager
def db_pass() -> Iterator[None]:
    """Around each unit of work of a long-lived thread: drop dead or old connections."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


class Worker:
    def __init__(
        self,
        *,
        device: DeviceInfo | None = None,
        load_timeout: float | None = None,
        worker_id: str | None = None,
    ):
        self.device = device or detect_device()
        self.pool = ModelPool(device=self.device, load_timeout=load_timeout)
        self.router = Router(self.pool)
        self.usage = UsageRecorder()
        self.drift = DriftMonitor()
        self.arms = ArmStats()  # per-arm figures of canaries and shadows (inference.arms)
        self.control_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.waiting = 0  # switches queued behind the one holding control_lock
        self.ready = False
        self.not_ready_detail = "restoring slots: starting"
        self.errors: dict[str, str] = {}
        self.switched_at: dict[str, float] = {}  # slot -> when a /switch swapped it
        self.switch_arrived: dict[str, float] = {}  # slot -> when that /switch was asked
        self.failures: dict[str, tuple[int | None, float]] = {}
        self.pin_errors: dict[int, str] = {}  # pinned version id -> why it is not loaded
        self.pin_failures: dict[int, float] = {}  # pinned version id -> when its load failed
        # slot -> BatchConfig, from the database on each reconcile pass (inference.batching)
        self.batching: dict = {}
        # slot -> (num_parallel, max_queue) of the slots that set their own generation
        # limits (0 / None: MODELMGR_LLM_*), from the database likewise
        self.llm_limits: dict[str, tuple[int, int | None]] = {}
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.started_at = time.time()
        # Placement (modelmgr.models.Slot.worker_group): slots of another group are not
        # served here; the registered identity (inference.registration), when any.
        self.group: str = settings.MODELMGR_WORKER_GROUP or "default"
        self.identity: Identity | None = None
        self._results: OrderedDict[str, dict] = OrderedDict()
        self._stop = threading.Event()
        self._nudge = threading.Event()
        self._threads: list[threading.Thread] = []
        self.phases = TwoPhase(self)  # fan-out switches: /prepare, /commit, /abort

    # --- one-step methods --------------------------------------------------------------
    def switch(
        self,
        *,
        switch_id: str,
        slots: dict[str, int | None],
        emit: Emit | None = None,
        shares: dict[str, float] | None = None,
    ) -> dict:
        """All-or-nothing switch; a repeated switch_id gets the first one's result."""
        arrived = time.monotonic()
        emit = emit or (lambda event: None)
        self.control_wait()
        try:
            done = self.switch_result(switch_id)
            if done is not None:
                emit(done)
                return done
            result = switch_apply(
                self,
                slots=slots,
                emit=emit,
                atomic=True,
                switch_id=switch_id,
                arrived=arrived,
                shares=shares,
            )
            self.remember_result(switch_id, result)
        finally:
            self.control_lock.release()
        return result

    def control_wait(self) -> None:
        """Take the control lock, counted in ``waiting`` meanwhile (a switch's queue)."""
        with self._count_lock:
            self.waiting += 1
        self.control_lock.acquire()
        with self._count_lock:
            self.waiting -= 1

    def switch_result(self, switch_id: str) -> dict | None:
        """The result of a switch done here already (a repeated switch_id), if any."""
        return self._results.get(switch_id) if switch_id else None

    def remember_result(self, switch_id: str, result: dict) -> None:
        if switch_id:
            self._results[switch_id] = result
            while len(self._results) > 100:
                self._results.popitem(last=False)

    def note_switched(self, slots: list[str], *, arrived: float | None = None) -> None:
        now = time.monotonic()
        for slot in slots:
            self.switched_at[slot] = now
            self.switch_arrived[slot] = now if arrived is None else arrived
            self.errors.pop(slot, None)
            self.failures.pop(slot, None)

    def reconcile_once(self, *, force: bool = False) -> dict:
        """One pass now. ``force`` (POST /reconcile, the web's nudge after a failed switch):
        retry failed versions at once, and restore the database's desired state even for
        slots switched within the grace, by switches that arrived before this call
        (inference.reconcile). The periodic pass keeps the grace."""
        return reconcile_run(self, force=force, overrule_grace=force)

    def restore(
        self,
        *,
        retry_s: float = 1.0,
        db_scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        """Converge to the database once (retrying while it does not answer); then ready.

        1. Restore the slots; slots that fail to load stay unserved with their error in
           ``errors``.
        2. Ready: serving starts.
        3. Load the pinned versions (inference.pins), after ready: a pin is not needed
           to serve any slot, so the worker does not wait for it to take traffic. A pin
           that fails here is in ``pin_errors`` and is retried by the periodic pass,
           like one the database could not be read for.

        The background thread passes ``db_scope=db_pass`` to reconnect between attempts.
        """
        while not self._stop.is_set():
            try:
                with db_scope():
                    reconcile_run(self, force=True, restoring=True, pins=False)
                break
            except DatabaseError as exc:
                self.not_ready_detail = (
                    f"restoring slots: database unavailable ({short_error(exc)})"
                )
                log.warning("%s; retrying", self.not_ready_detail)
                self._stop.wait(retry_s)
            except Exception:
                # A bug, not an outage: serve what there is; the periodic pass retries.
                log.exception("restoring slots failed")
                break
        self.ready = True
        log.info(
            "ready: serving %s",
            {s: r.entry.ref for s, r in self.router.table.items()} or "no slots",
        )
        if self._stop.is_set():
            return
        try:
            with db_scope():
                self.reconcile_pins(force=True)
        except Exception as exc:
            log.warning("restoring pins failed (the periodic pass retries): %s", short_error(exc))

    def reconcile_pins(self, *, force: bool = False) -> dict:
        """Converge the pins alone (inference.pins), under the control lock."""
        with self.control_lock:
            return pins_run(self, force=force)

    def load(self, *, version_id: int, pin: bool = False) -> dict:
        """Load a version outside any slot (tests, tools). ``pin`` pins it until the next
        reconcile pass, which makes the pool's pins what the database says."""
        with self.control_lock:
            entry = self.load_entry(version_id=version_id, pin=pin)
        return self.describe(entry)

    def load_entry(self, *, version_id: int, pin: bool) -> PoolEntry:
        """Load (or reuse) a deployable version in the pool; the caller holds the
        control lock."""
        spec = version_spec_get(version_id=version_id)
        problem = spec.deployable_problem()
        if problem:
            raise NotDeployable(problem)
        runtime_for(spec.framework)
        entry, fresh = self.pool.load(spec, signature=spec.signature_for(None), pin=pin)
        if fresh:
            log.info(
                "loaded %s in %.1f ms (warm-up %.1f ms)%s",
                entry.ref,
                entry.load_ms,
                entry.warmup_ms,
                " pinned" if pin else "",
            )
        return entry

    def preview(self, *, version_ids: list[int]) -> dict:
        """What loading these versions would need and evict; changes nothing (inference.fit)."""
        specs = [version_spec_get(version_id=vid) for vid in version_ids]
        return fit_preview(self.pool, specs)

    def unload(self, *, version_id: int) -> dict:
        with self.control_lock:
            entry = self.pool.unload(version_id)
        return {"version_id": entry.version_id, "ref": entry.ref, "state": entry.state}

    def flush_stats(self) -> int:
        return self.usage.flush()

    def nudge(self) -> None:
        self._nudge.set()

    # --- serving helpers ------------------------------------------------------------------
    def infer_blocking(self, slot: str, inputs: dict) -> tuple[PoolEntry, dict, float]:
        """Run one request on ``slot`` outside the server (tests, tools)."""
        entry = self.router.acquire(slot)
        ok, latency = False, None
        try:
            started = time.perf_counter()
            outputs = entry.model.infer(inputs)
            latency = (time.perf_counter() - started) * 1000
            ok = True
        finally:
            self.router.release(entry)
            self.usage.record(slot, entry.version_id, latency, ok)
        return entry, outputs, latency

    # --- status -----------------------------------------------------------------------------
    def describe(self, entry: PoolEntry) -> dict:
        slots = [s for s, r in self.router.table.items() if r.entry is entry]
        return {
            "version_id": entry.version_id,
            "ref": entry.ref,
            "runtime": entry.runtime,
            "provider": entry.model.provider,
            "memory_bytes": entry.memory_bytes,
            "measured_bytes": entry.measured_bytes,
            "load_ms": round(entry.load_ms, 3),
            "warmup_ms": round(entry.warmup_ms, 3),
            "warmup_note": entry.model.warmup_note,
            "loaded_at": iso(entry.loaded_at),
            "last_used": iso(entry.last_used),
            "in_flight": entry.in_flight,
            "pinned": entry.pinned,
            "state": entry.state,
            "slots": slots,
            **self._language_model(entry),
        }

    def _language_model(self, entry: PoolEntry) -> dict:
        """What /status shows of a loaded language model, like ``ollama ps``."""
        if not is_language_model(entry.model):
            return {}
        when, kept_by = expiry(entry, served=self.router.served_ids())
        model = entry.model
        return {
            "language_model": {
                "context_length": model.context_length,
                "device": model.device,
                "vram_bytes": entry.memory_bytes if model.device.startswith("cuda") else 0,
                "keep_alive_s": entry.keep_alive_s,
                "kept_by": kept_by,
                "expires_at": iso(when),
            }
        }

    def status(self) -> dict:
        return {
            "worker_id": self.worker_id,
            "name": self.identity.name if self.identity else self.worker_id,
            "group": self.group,
            "pid": os.getpid(),
            "ready": self.ready,
            "device": self.device.device,
            "device_name": self.device.name,
            "python_version": environment()["python_version"],
            "memory": memory_status(self.device, self.pool.memory()),
            "slots": {
                slot: {
                    "version_id": r.entry.version_id,
                    "ref": r.entry.ref,
                    "since": iso(r.since),
                    **route_arms(r),
                }
                for slot, r in sorted(self.router.table.items())
            },
            "models": [
                self.describe(e) for e in sorted(self.pool.entries(), key=lambda e: e.version_id)
            ],
            "batching": {slot: config._asdict() for slot, config in sorted(self.batching.items())},
            "generations": _gate_counts(),
            "llm_limits": {
                slot: {"num_parallel": parallel, "max_queue": queue}
                for slot, (parallel, queue) in sorted(self.llm_limits.items())
            },
            "errors": dict(self.errors),
            # slot -> {"version_id", "status", "moved"}: data drift (inference.drift)
            "data_drift": dict(self.drift.statuses),
            "pin_errors": {str(vid): why for vid, why in sorted(self.pin_errors.items())},
            "control": {"busy": self.control_lock.locked(), "waiting_switches": self.waiting},
            "started_at": iso(self.started_at),
        }

    # --- background threads -----------------------------------------------------------------
    def start(self, identity: Identity | None = None) -> None:
        """Restore then reconcile periodically; flush usage periodically; with an
        ``identity``, register in the database and heartbeat (inference.registration)."""
        self.identity = identity
        loops = [
            (self._reconcile_loop, "reconcile"),
            (self._stats_loop, "stats"),
            (self._keep_alive_loop, "keep-alive"),
        ]
        if identity is not None:
            self.group = identity.group
            loops.append((lambda: heartbeat_loop(self, identity, self._stop), "heartbeat"))
        for target, name in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def prune_cache(self) -> PruneReport:
        """Drop cache folders of versions gone from the registry (inference.cache)."""
        in_use = {entry.spec.content_hash for entry in self.pool.entries()}
        return cache_prune(in_use=in_use)

    def record_signatures(self) -> int:
        """Write what warm-ups showed of unrecorded signatures (inference.observe)."""
        return signatures_record(self.pool.entries())

    def _reconcile_loop(self) -> None:
        self.restore(db_scope=db_pass)
        self._guarded("signature record", self.record_signatures)
        interval = settings.MODELMGR_RECONCILE_INTERVAL_S
        next_prune = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_prune:
                self._guarded("worker cache prune", self.prune_cache)
                next_prune = time.monotonic() + settings.MODELMGR_WORKER_CACHE_PRUNE_S
            nudged = self._nudge.wait(interval)
            self._nudge.clear()
            if self._stop.is_set():
                break
            self._guarded("reconcile", lambda forced=nudged: reconcile_run(self, force=forced))
            self._guarded("signature record", self.record_signatures)

    def _keep_alive_loop(self) -> None:
        """Unload idle language models whose keep-alive ran out (no database needed)."""
        while not self._stop.wait(KEEP_ALIVE_POLL_S):
            try:
                keep_alive_sweep(self)
            except Exception as exc:
                log.warning("keep-alive sweep failed: %s", short_error(exc))

    def _stats_loop(self) -> None:
        while not self._stop.wait(settings.MODELMGR_STATS_FLUSH_S):
            self._guarded("usage flush", self.flush_stats)

    def _guarded(self, what: str, call: Callable[[], object]) -> None:
        try:
            with db_pass():
                call()
        except Exception as exc:
            log.warning("%s failed: %s", what, short_error(exc))

    def stop(self, *, drain_timeout: float = 30.0) -> None:
        """Stop the loops, wait for requests to finish, flush usage, unload everything."""
        self.ready = False
        self.not_ready_detail = "shutting down"
        self.phases.close()
        self._stop.set()
        self._nudge.set()
        for thread in self._threads:
            thread.join(timeout=drain_timeout)
        self.pool.wait_idle(drain_timeout)
        self._guarded("final usage flush", self.flush_stats)
        if self.identity is not None:
            self._guarded("sign-off", lambda: worker_signed_off(self.identity))
        self.pool.close(timeout=0)
        log.info("worker stopped")


def _gate_counts() -> dict:
    from inference.serving.generation import gate_counts  # it imports this module

    return gate_counts()
