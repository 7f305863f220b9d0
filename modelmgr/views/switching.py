"""Run a switch or a rollback for the settings page without blocking the web process.

The switch service blocks until the new versions are loaded, warmed up and swapped
(seconds). Django runs sync views on one shared thread under ASGI, so a page that
waited for it would stall every other page. The page starts the service in a thread
instead and answers at once; the phases arrive over /ws/events/ as the service
publishes them (``switch.progress``), and this module publishes the outcome
(``switch.done``) with the same partials the page renders.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import close_old_connections, connections

from modelmgr.events import events_publish
from modelmgr.views.common import error_text

log = logging.getLogger(__name__)
KEEP_RUNS = 20
# The services' details open with what happened ("switch failed, nothing changed: ");
# the page says that in its own headline and shows the cause after it.
_LEAD = re.compile(r"^(switch|rollback) (failed|refused)(, [^:]*)?: ", re.IGNORECASE)


@dataclass
class SwitchRun:
    """One switch (or rollback) started from the page, as the page shows it."""

    id: str
    kind: str  # "switch" | "rollback"
    assignments: dict[str, str]
    actor_label: str
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    ok: bool | None = None
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.ok is None

    @property
    def refused(self) -> bool:
        """Refused before anything was tried (a stale page, a bad choice), not failed."""
        match = _LEAD.match(self.error)
        return bool(match) and match[2].lower() == "refused"

    @property
    def cause(self) -> str:
        """The error without the lead its headline already says."""
        return _LEAD.sub("", self.error, count=1)

    @property
    def duration_ms(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at) * 1000

    @property
    def steps(self) -> list[tuple[str, str]]:
        """The stepper for a page (re)load; live pages get it from each event instead."""
        if self.running:
            return phase_steps("validating")
        return phase_steps("done") if self.ok else []

    def payload(self) -> dict[str, Any]:
        return {
            "switch_id": self.id,
            "kind": self.kind,
            "assignments": self.assignments,
            "actor": self.actor_label,
            "ok": self.ok,
            "error": self.error,
            "result": self.result,
            "duration_ms": self.duration_ms,
        }


PHASES = ("validating", "loading", "warming up", "swapping", "unloading")


def phase_steps(phase: str, *, failed: bool = False) -> list[tuple[str, str]]:
    """(title, state) per phase: before ``phase`` done, ``phase`` active or failed.

    ``phase="done"`` marks every phase done; an unknown phase marks none.
    """
    if phase == "done":
        return [(title, "done") for title in PHASES]
    if phase not in PHASES:
        return [(title, "") for title in PHASES]
    current = PHASES.index(phase)
    steps = []
    for index, title in enumerate(PHASES):
        if index < current:
            state = "done"
        elif index == current:
            state = "failed" if failed else "active"
        else:
            state = ""
        steps.append((title, state))
    return steps


_runs: dict[str, SwitchRun] = {}
_runs_lock = threading.Lock()


def switch_run_latest() -> SwitchRun | None:
    with _runs_lock:
        return max(_runs.values(), key=lambda r: r.started_at, default=None)


def switch_runs_recent(count: int = 3) -> list[SwitchRun]:
    """The newest runs first: each shown in a box of its own on a page (re)load."""
    with _runs_lock:
        return sorted(_runs.values(), key=lambda r: r.started_at, reverse=True)[:count]


def switch_run_get(run_id: str) -> SwitchRun | None:
    with _runs_lock:
        return _runs.get(run_id)


def switch_runs_wait(timeout: float | None = None) -> None:
    """Wait for every run this process started (tests, shutdown)."""
    with _runs_lock:
        threads = [r.thread for r in _runs.values() if r.thread is not None]
    for thread in threads:
        thread.join(timeout)


def _jsonable(result: Any) -> dict[str, Any]:
    """The service's per-slot result as plain data for the event and the template."""
    if result is None:
        return {}
    if hasattr(result, "as_dict"):
        result = result.as_dict()
    elif hasattr(result, "__dataclass_fields__"):
        from dataclasses import asdict

        result = asdict(result)
    swap_ms = result.get("swap_ms") if isinstance(result, dict) else None
    if isinstance(result, dict) and isinstance(result.get("slots"), dict):
        result = {
            name: {"swap_ms": swap_ms, **report} if isinstance(report, dict) else report
            for name, report in result["slots"].items()
        }
    if not isinstance(result, dict):
        return {"result": str(result)}
    return {str(k): (v if isinstance(v, dict) else {"ref": str(v)}) for k, v in result.items()}


def switch_run_start(
    *, kind: str, assignments: dict[str, str], actor_label: str, call: Callable[[str], Any]
) -> SwitchRun:
    """Start ``call(run_id)`` (the service call) in a thread; publish ``switch.done``
    after it. The service takes the run's id as its switch id, so its progress events
    land in this run's box on the page."""
    run = SwitchRun(
        id=uuid.uuid4().hex[:12], kind=kind, assignments=dict(assignments), actor_label=actor_label
    )

    def target() -> None:
        close_old_connections()
        try:
            run.result = _jsonable(call(run.id))
            run.ok = True
        except Exception as exc:  # noqa: BLE001 - every failure is shown to the user
            if not hasattr(exc, "detail"):
                log.exception("%s %s failed", kind, run.id)
            run.error = error_text(exc)
            run.ok = False
        finally:
            run.finished_at = time.time()
            connections.close_all()
        events_publish("switch.done", run.payload())

    run.thread = threading.Thread(target=target, name=f"{kind}-{run.id}", daemon=True)
    with _runs_lock:
        _runs[run.id] = run
        for old in sorted(_runs.values(), key=lambda r: r.started_at)[:-KEEP_RUNS]:
            if not old.running:
                _runs.pop(old.id, None)
    run.thread.start()
    return run
