"""A switch in two phases, for the web's fan-out over several workers
(modelmgr.deploy.fanout): /prepare, then /commit or /abort.

Phase 1 (``prepare``) takes the worker's control lock and runs the switch's validate,
load and warm-up steps (inference.switch.switch_prepare); on success it keeps the lock
and the loaded models, so no reconcile or other switch moves the worker until the web
decides. Phase 2 is ``commit`` (the swap: switch_commit) or ``abort`` (what phase 1
loaded goes again: switch_abort); either releases the lock. A prepared switch that hears
neither within MODELMGR_SWITCH_PREPARE_TTL_S (the web died) is aborted by a timer.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from inference.switch import (
    Emit,
    Prepared,
    prepared_report,
    switch_abort,
    switch_commit,
    switch_prepare,
)
from modelmgr.exceptions import ModelmgrError

if TYPE_CHECKING:
    from inference.worker import Worker

log = logging.getLogger("inference")


class NotPrepared(ModelmgrError):
    status = 409


@dataclass
class _Held:
    prepared: Prepared
    arrived: float
    timer: threading.Timer


class TwoPhase:
    def __init__(self, worker: Worker):
        self.worker = worker
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}

    def prepare(
        self,
        *,
        switch_id: str,
        slots: dict[str, int | None],
        emit: Emit,
        shares: dict[str, float] | None = None,
    ) -> dict:
        """Phase 1; emits the switch's progress, then ``result`` (ok, or the errors)."""
        if not switch_id:
            raise NotPrepared("a two-phase switch needs a switch_id")
        worker = self.worker
        arrived = time.monotonic()
        worker.control_wait()
        try:
            prepared = switch_prepare(
                worker, slots=slots, emit=emit, atomic=True, switch_id=switch_id, shares=shares
            )
        except BaseException:
            worker.control_lock.release()
            raise
        if prepared.errors:
            try:
                return switch_abort(worker, prepared, emit)
            finally:
                worker.control_lock.release()
        ttl = settings.MODELMGR_SWITCH_PREPARE_TTL_S
        timer = threading.Timer(ttl, self._expire, args=(switch_id,))
        timer.daemon = True
        with self._lock:
            self._held[switch_id] = _Held(prepared, arrived, timer)
        timer.start()
        result = {"event": "result", "ok": True, "prepared": True}
        result["slots"] = prepared_report(prepared)
        emit(result)
        return result

    def _take(self, switch_id: str) -> _Held | None:
        with self._lock:
            held = self._held.pop(switch_id, None)
        if held is not None:
            held.timer.cancel()
        return held

    def commit(self, *, switch_id: str) -> dict:
        """Phase 2: swap. Answers the result with the swap's progress events in
        ``events``; a switch committed already answers its result again."""
        done = self.worker.switch_result(switch_id)
        if done is not None:
            return done
        held = self._take(switch_id)
        if held is None:
            raise NotPrepared(f"switch {switch_id} is not prepared here (aborted or expired)")
        events: list[dict] = []
        try:
            result = switch_commit(self.worker, held.prepared, events.append, arrived=held.arrived)
        finally:
            self.worker.control_lock.release()
        # The swap's progress (swapping, slot_done, unloading) for the web to relay.
        result = {**result, "events": [e for e in events if e.get("event") != "result"]}
        self.worker.remember_result(switch_id, result)
        return result

    def abort(self, *, switch_id: str) -> dict:
        """Phase 2 on failure elsewhere: unload what phase 1 loaded. Idempotent."""
        held = self._take(switch_id)
        if held is None:
            return {"aborted": False, "switch_id": switch_id}
        try:
            switch_abort(self.worker, held.prepared, lambda event: None)
        finally:
            self.worker.control_lock.release()
        return {"aborted": True, "switch_id": switch_id}

    def _expire(self, switch_id: str) -> None:
        if switch_id in self._held:
            log.warning("switch %s: neither committed nor aborted in time; aborting", switch_id)
            self.abort(switch_id=switch_id)

    def close(self) -> None:
        for switch_id in list(self._held):
            self.abort(switch_id=switch_id)
