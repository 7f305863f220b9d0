"""The web process's Prometheus metrics (GET /metrics on the web port).

Control-plane events only; the robots' requests are counted by the worker
(inference.metrics). Counters are per process (one web process today):

- ``modelmgr_switches_total{outcome}``: slot switches (``ok``; ``refused``: a 4xx, e.g.
  a version that does not fit or failed to load; ``error``: a 5xx, e.g. the worker down).
- ``modelmgr_uploads_total{outcome}``: versions uploaded through the API or the pages.
- ``modelmgr_imports_total{outcome}``: import jobs ``created``, ``done`` or ``failed``.
- ``modelmgr_worker_up`` / ``modelmgr_worker_ready``: whether the worker answered its
  status (set by every status read, and read afresh at each scrape).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

from modelmgr.exceptions import ModelmgrError

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

SWITCHES = Counter(
    "modelmgr_switches",
    "Slot switches by outcome (ok; refused: 4xx; error: 5xx).",
    ["outcome"],
    registry=REGISTRY,
)
UPLOADS = Counter(
    "modelmgr_uploads",
    "Version uploads through the API and the pages, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
IMPORTS = Counter(
    "modelmgr_imports",
    "Import jobs by event: created, done, failed.",
    ["outcome"],
    registry=REGISTRY,
)
WORKER_UP = Gauge(
    "modelmgr_worker_up",
    "1 when the inference worker answered its last status read.",
    registry=REGISTRY,
)
WORKER_READY = Gauge(
    "modelmgr_worker_ready",
    "1 when the inference worker answered its last status read and serves (restore done).",
    registry=REGISTRY,
)
for _counter in (SWITCHES, UPLOADS):
    for _outcome in ("ok", "refused", "error"):
        _counter.labels(_outcome)  # exported at 0 before the first one
for _outcome in ("created", "done", "failed"):
    IMPORTS.labels(_outcome)


def outcome_of(exc: BaseException) -> str:
    status = exc.status if isinstance(exc, ModelmgrError) else 500
    return "refused" if 400 <= status < 500 else "error"


def counted(counter: Counter, *, when: Callable[[dict], bool] | None = None):
    """Count each call of the decorated service in ``counter`` by its outcome
    (``when(kwargs)`` false: not counted)."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if when is not None and not when(kwargs):
                return function(*args, **kwargs)
            try:
                result = function(*args, **kwargs)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    counter.labels(outcome_of(exc)).inc()
                raise
            counter.labels("ok").inc()
            return result

        return wrapper

    return decorate


def import_record(outcome: str) -> None:
    IMPORTS.labels(outcome).inc()


def worker_seen(status: dict[str, Any] | None) -> None:
    """What a status read of the worker found (None: it did not answer)."""
    WORKER_UP.set(0 if status is None else 1)
    WORKER_READY.set(1 if status and status.get("ready") else 0)
