"""Loaded models keyed by version id: loads off the serving path, a memory budget, LRU.

An entry is ``ready`` (loaded; serving a slot or cached), ``draining`` (no slot serves it
but requests still hold it), ``unloading`` or ``unloaded``. Requests hold an entry through
``try_acquire``/``release``; the last release of a draining entry starts its unload, so
a model is never unloaded under a request. One lock guards every state change; the hot
path takes it twice per request for a few attribute updates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from inference.device import MB, DeviceInfo, MemoryReading, memory_reading
from inference.entry import DRAINING, READY, UNLOADED, UNLOADING, PoolEntry, short_error
from inference.errors import InsufficientMemory
from inference.loading import LoadJob, PoolLoading
from inference.versions import VersionSpec
from modelmgr.exceptions import InUse, NotFound
from modelmgr.memory_need import shape_from_config, version_need

log = logging.getLogger("inference")
__all__ = [
    "DRAINING",
    "READY",
    "UNLOADED",
    "UNLOADING",
    "LoadJob",
    "ModelPool",
    "PoolEntry",
    "short_error",
]


class ModelPool(PoolLoading):
    def __init__(
        self,
        *,
        device: DeviceInfo,
        served_ids: Callable[[], set[int]] | None = None,
        load_timeout: float | None = None,
        memory_factor: float | None = None,
    ):
        self.device = device
        self.served_ids = served_ids or set
        self.load_timeout = (
            settings.MODELMGR_LOAD_TIMEOUT_S if load_timeout is None else load_timeout
        )
        self.memory_factor = (
            settings.MODELMGR_WORKER_MEMORY_FACTOR if memory_factor is None else memory_factor
        )
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)
        self._entries: dict[int, PoolEntry] = {}
        self._releasing: set[PoolEntry] = set()
        self._reserved = 0
        self._unloader = ThreadPoolExecutor(1, thread_name_prefix="unload")

    # --- hot path ------------------------------------------------------------------
    def try_acquire(self, entry: PoolEntry) -> bool:
        with self._lock:
            if entry.state != READY and entry.state != DRAINING:
                return False
            entry.in_flight += 1
            return True

    def release(self, entry: PoolEntry) -> None:
        with self._lock:
            entry.in_flight -= 1
            entry.last_used = time.time()
            if entry.in_flight or entry.state != DRAINING:
                return
            self._begin_unload(entry)
        self._unloader.submit(self._finish_unload, entry)

    # --- reading ---------------------------------------------------------------------
    def get(self, version_id: int) -> PoolEntry | None:
        return self._entries.get(version_id)

    def entries(self) -> list[PoolEntry]:
        with self._lock:
            return [*self._entries.values(), *self._releasing]

    def estimate(self, spec: VersionSpec) -> int:
        """The admission figure: modelmgr.memory_need, the one the web shows before a switch."""
        shape = shape_from_config(spec.llm_config, spec.metadata) if spec.llm_config else None
        return version_need(
            min_vram_mb=spec.min_vram_mb,
            size_bytes=spec.size_bytes,
            memory_factor=self.memory_factor,
            shape=shape,
            parallel=settings.MODELMGR_LLM_NUM_PARALLEL,
            context=settings.MODELMGR_LLM_CONTEXT,
        ).total_bytes

    def memory(self) -> MemoryReading:
        with self._lock:
            return self._reading()

    def _reading(self) -> MemoryReading:
        held = sum(e.memory_bytes for e in (*self._entries.values(), *self._releasing))
        reading = memory_reading(self.device, models_bytes=held)
        return MemoryReading(
            reading.kind, reading.budget_bytes, reading.used_bytes + self._reserved
        )

    def plan_view(self) -> tuple[MemoryReading, list[PoolEntry], set[int]]:
        """One consistent snapshot for planning (inference.fit): memory, entries, served."""
        with self._lock:
            return self._reading(), list(self._entries.values()), set(self.served_ids())

    # --- loading ---------------------------------------------------------------------
    def reuse(self, version_id: int) -> tuple[PoolEntry | None, bool]:
        """The loaded entry of a version and whether it was revived from draining."""
        with self._lock:
            entry = self._entries.get(version_id)
            if entry is None:
                return None, False
            if entry.state == DRAINING:
                entry.state = READY
                return entry, True
            return (entry, False) if entry.state == READY else (None, False)

    def reserve(self, spec: VersionSpec, *, wait_s: float = 10.0) -> int:
        """Reserve the estimate of ``spec`` in the budget, or raise InsufficientMemory.

        1. Fits in what is free: reserve it.
        2. Else unload the least recently used model no slot serves (not pinned, idle).
        3. Else, while models drain or unload, wait for them (up to ``wait_s``).
        """
        needed = self.estimate(spec)
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                reading = self._reading()
                if needed <= reading.free_bytes:
                    self._reserved += needed
                    return needed
                reclaimable = self._reclaimable_bytes()
                if needed > reading.free_bytes + reclaimable:
                    # Evicting every cached model would still not make room: refuse now
                    # and keep them, instead of unloading them one by one for nothing.
                    raise InsufficientMemory(
                        f"{spec.ref} needs {needed / MB:.0f} MB, {reading.free_bytes / MB:.0f} MB "
                        f"free of {reading.budget_bytes / MB:.0f} MB budget"
                        + (
                            f" (unloading every model no slot serves would free only "
                            f"{reclaimable / MB:.0f} MB more)"
                            if reclaimable
                            else ""
                        )
                    )
                victim = self._lru_victim()
                if victim is None:
                    pending = self._releasing or any(
                        e.state == DRAINING for e in self._entries.values()
                    )
                    remaining = deadline - time.monotonic()
                    if pending and remaining > 0:
                        self._released.wait(remaining)
                        continue
                    raise InsufficientMemory(
                        f"{spec.ref} needs {needed / MB:.0f} MB, {reading.free_bytes / MB:.0f} MB "
                        f"free of {reading.budget_bytes / MB:.0f} MB budget"
                    )
                self._begin_unload(victim)
            log.info(
                "evicting %s (least recently used, no slot serves it) for %s", victim.ref, spec.ref
            )
            self._finish_unload(victim)

    def reserve_free(self, spec: VersionSpec) -> int:
        """Reserve the estimate of ``spec`` in what is free now, evicting nothing (a
        profile's copy, inference.profile); InsufficientMemory names need and free."""
        needed = self.estimate(spec)
        with self._lock:
            reading = self._reading()
            if needed > reading.free_bytes:
                raise InsufficientMemory(
                    f"profiling {spec.ref} needs {needed / MB:.0f} MB, "
                    f"{reading.free_bytes / MB:.0f} MB free of {reading.budget_bytes / MB:.0f} MB "
                    "budget (a profile evicts nothing: free memory first)"
                )
            self._reserved += needed
        return needed

    def unreserve(self, nbytes: int) -> None:
        with self._lock:
            self._reserved -= nbytes

    def _reclaimable_bytes(self) -> int:
        """What eviction and the unloads under way can still give back."""
        served = self.served_ids()
        return sum(
            e.memory_bytes
            for e in self._entries.values()
            if e.state == DRAINING
            or (e.state == READY and not e.pinned and e.version_id not in served)
        ) + sum(e.memory_bytes for e in self._releasing)

    def _lru_victim(self) -> PoolEntry | None:
        served = self.served_ids()
        idle = [
            e
            for e in self._entries.values()
            if e.state == READY and not e.pinned and not e.in_flight and e.version_id not in served
        ]
        return min(idle, key=lambda e: e.last_used, default=None)

    # --- unloading -------------------------------------------------------------------
    def set_pinned(self, version_id: int, pinned: bool) -> PoolEntry:
        with self._lock:
            entry = self._entries.get(version_id)
            if entry is None:
                raise NotFound(f"version {version_id} is not loaded")
            entry.pinned = pinned
            return entry

    def retire(self, entry: PoolEntry) -> None:
        """Drain then unload an entry no slot serves and nobody pinned."""
        with self._lock:
            if entry.state != READY or entry.pinned or entry.version_id in self.served_ids():
                return
            if entry.in_flight:
                entry.state = DRAINING
                return
            self._begin_unload(entry)
        self._unloader.submit(self._finish_unload, entry)

    def expire(self, entry: PoolEntry, now: float) -> bool:
        """Unload a language model whose keep-alive ran out (inference.keep_alive): idle,
        ready, unpinned, served by no slot, and idle for longer than its keep_alive_s.
        Checked under the lock, so a request that just took it keeps it. True if so."""
        with self._lock:
            keep = entry.keep_alive_s
            if (
                keep is None
                or keep < 0
                or entry.state != READY
                or entry.pinned
                or entry.in_flight
                or entry.last_used + keep > now
                or entry.version_id in self.served_ids()
            ):
                return False
            self._begin_unload(entry)
        self._unloader.submit(self._finish_unload, entry)
        return True

    def unload(self, version_id: int) -> PoolEntry:
        """Unload a version no slot serves (pinned or not); waits unless requests hold it."""
        with self._lock:
            entry = self._entries.get(version_id)
            if entry is None or entry.state not in (READY, DRAINING):
                raise NotFound(f"version {version_id} is not loaded")
            if version_id in self.served_ids():
                raise InUse(f"{entry.ref} is served by a slot; switch the slot away first")
            entry.pinned = False
            if entry.in_flight:
                entry.state = DRAINING
                return entry
            self._begin_unload(entry)
        self._finish_unload(entry)
        return entry

    def _begin_unload(self, entry: PoolEntry) -> None:
        entry.state = UNLOADING
        if self._entries.get(entry.version_id) is entry:
            del self._entries[entry.version_id]
        self._releasing.add(entry)

    def _finish_unload(self, entry: PoolEntry) -> None:
        try:
            entry.model.unload()
        except Exception:
            log.exception("unloading %s failed", entry.ref)
        with self._lock:
            entry.state = UNLOADED
            self._releasing.discard(entry)
            self._released.notify_all()
        log.info("unloaded %s", entry.ref)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request holds a model and no unload is pending."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._releasing or any(e.in_flight for e in self._entries.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._released.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Drain (up to ``timeout``), then unload everything."""
        self.wait_idle(timeout)
        with self._lock:
            entries = list(self._entries.values())
            for entry in entries:
                self._begin_unload(entry)
        for entry in entries:
            self._finish_unload(entry)
        self._unloader.shutdown(wait=True)
