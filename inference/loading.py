"""Loading for the pool: each load in its own thread, waited for with a timeout.

A hung load is abandoned (its thread is a daemon and its late result is unloaded on
arrival), so it never blocks the pool, the switch that asked for it, or the process's
exit; a ThreadPoolExecutor would join its threads at exit and run out of workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field

from django.conf import settings

from inference.device import MB
from inference.entry import PoolEntry, short_error
from inference.errors import LoadFailed, LoadTimeout
from inference.keep_alive import is_language_model
from inference.materialize import version_materialize
from inference.memory import LoadMeter
from inference.observe import observe_signature
from inference.runtimes.base import LoadedModel, runtime_for
from inference.versions import VersionSpec
from modelmgr.exceptions import NotDeployable

log = logging.getLogger("inference")


@dataclass(eq=False)
class LoadJob:
    spec: VersionSpec
    reserved: int
    started: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)
    abandoned: bool = False


class PoolLoading:
    """The loading half of ModelPool (which provides the lock, entries and budget)."""

    def start_load(
        self,
        spec: VersionSpec,
        *,
        signature: dict,
        reserved: int,
        progress: Callable[[str], None] | None = None,
    ) -> LoadJob:
        """Load in its own daemon thread: a hung load can be abandoned without blocking
        the pool or the process's exit (a ThreadPoolExecutor joins its threads)."""
        job = LoadJob(spec=spec, reserved=reserved)
        threading.Thread(
            target=self._run_load,
            args=(job, signature, progress),
            name=f"load-{spec.id}",
            daemon=True,
        ).start()
        return job

    def wait(self, job: LoadJob) -> PoolEntry:
        remaining = job.started + self.load_timeout - time.monotonic()
        try:
            return job.future.result(timeout=max(0.0, remaining))
        except FuturesTimeout:
            with self._lock:
                if not job.future.done():
                    job.abandoned = True
                    self._reserved -= job.reserved
                    job.reserved = 0
            if job.abandoned:
                log.warning(
                    "load of %s timed out after %g s; abandoned", job.spec.ref, self.load_timeout
                )
                raise LoadTimeout(
                    f"load of {job.spec.ref} timed out after {self.load_timeout:g} s"
                ) from None
            return job.future.result()

    def load(
        self, spec: VersionSpec, *, signature: dict, pin: bool = False
    ) -> tuple[PoolEntry, bool]:
        """Reuse or load (reserve, load, warm up, wait); returns (entry, freshly loaded)."""
        entry, _ = self.reuse(spec.id)
        fresh = entry is None
        if entry is None:
            job = self.start_load(spec, signature=signature, reserved=self.reserve(spec))
            entry = self.wait(job)
        if pin:
            self.set_pinned(spec.id, True)
        return entry, fresh

    def load_detached(self, spec: VersionSpec, signature: dict) -> PoolEntry:
        """Load and warm up a copy that the pool does not hold (a profile's): no slot
        routes to it and the caller unloads it (``entry.model.unload()``)."""
        return self._load_blocking(spec, signature, None)

    def _run_load(self, job: LoadJob, signature: dict, progress) -> None:
        try:
            entry = self._load_blocking(job.spec, signature, progress)
        except BaseException as exc:
            with self._lock:
                self._reserved -= job.reserved
                job.reserved = 0
                job.future.set_exception(exc)
            return
        with self._lock:
            self._reserved -= job.reserved
            job.reserved = 0
            late = job.abandoned or self._entries.get(job.spec.id) is not None
            if not late:
                self._entries[job.spec.id] = entry
                job.future.set_result(entry)
        if late:
            log.warning("discarding the late result of the load of %s", job.spec.ref)
            entry.model.unload()

    def _load_blocking(self, spec: VersionSpec, signature: dict, progress) -> PoolEntry:
        """1. Refuse what may not run. 2. Materialize (sha256-checked). 3. Runtime load.
        4. Warm up on zeros from the signature."""
        problem = spec.deployable_problem()
        if problem:
            raise NotDeployable(problem)
        runtime = runtime_for(spec.framework)
        started = time.perf_counter()
        # A provided version has no files: the provider runs it.
        folder = version_materialize(spec=spec) if spec.provider is None else None
        meter = LoadMeter(self.device)
        try:
            if hasattr(runtime, "load_version"):  # runtimes that read the version's metadata
                model = runtime.load_version(folder, spec, self.device.device)
            else:
                model = runtime.load(folder, spec.primary, signature, self.device.device)
        except Exception as exc:
            raise LoadFailed(f"loading {spec.ref} failed: {short_error(exc)}") from exc
        load_ms = (time.perf_counter() - started) * 1000
        if progress is not None:
            progress("warming")
        started = time.perf_counter()
        try:
            model.warm_up()
        except Exception as exc:
            model.unload()
            raise LoadFailed(f"warm-up of {spec.ref} failed: {short_error(exc)}") from exc
        warmup_ms = (time.perf_counter() - started) * 1000
        observed = (
            observe_signature(model, spec.declared_signature) if not model.warmup_note else None
        )
        now = time.time()
        warmed = not model.warmup_note
        inline_ms = settings.MODELMGR_WORKER_INLINE_MS
        return PoolEntry(
            spec=spec,
            model=model,
            runtime=runtime.name,
            load_ms=load_ms,
            warmup_ms=warmup_ms,
            memory_bytes=self._held_bytes(spec, model),
            loaded_at=now,
            last_used=now,
            avg_ms=warmup_ms if warmed else float("inf"),
            inline=warmed and warmup_ms < inline_ms,
            observed_signature=observed,
            measured_bytes=meter.delta(),
            keep_alive_s=spec.keep_alive_s if is_language_model(model) else None,
        )

    def _held_bytes(self, spec: VersionSpec, model: LoadedModel) -> int:
        """What the model counts against the budget: what the runtime measured, but never
        less than the version's declared min_vram_mb (runtimes under-report arenas)."""
        declared = (spec.min_vram_mb or 0) * MB
        return int(max(model.memory_bytes or 0, declared) or self.estimate(spec))
