"""Keep-alive of language models (Ollama's ``keep_alive``, adapted to slots).

A loaded language model that no slot serves and nobody pinned is unloaded once it has
been idle for its keep-alive: the version's ``keep_alive_s``, else
MODELMGR_LLM_KEEP_ALIVE (300 s, Ollama's 5m); a request's own ``keep_alive`` replaces it
for that loaded copy until the next request (``0``: unloaded right after the request;
negative: kept until unloaded by other means). The database is the desired state: a
model a slot serves stays loaded while the slot serves it, and a pinned one while the
pin stands, whatever keep_alive says; their expiry starts when the slot or the pin lets
go. Tensor models are not concerned: they stay cached until LRU eviction needs room.

The worker's keep-alive thread calls ``keep_alive_sweep`` every KEEP_ALIVE_POLL_S.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from inference.runtimes.llm import CausalLM

if TYPE_CHECKING:
    from inference.entry import PoolEntry
    from inference.worker import Worker

log = logging.getLogger("inference")
KEEP_ALIVE_POLL_S = 0.25
# What Ollama itself reports for a model that never expires (keep_alive < 0): now plus the
# largest Go duration (~292 years), a real timestamp every Ollama client parses.
NEVER = timedelta(microseconds=(2**63 - 1) // 1000)


def is_language_model(model: object) -> bool:
    return isinstance(model, CausalLM)


def expiry(
    entry: PoolEntry, *, served: set[int], now: float | None = None
) -> tuple[float | None, str]:
    """When ``entry`` will be unloaded (epoch seconds, or None: not by keep-alive) and why:
    ``slot`` (served: until the slot changes), ``pinned``, ``forever`` (keep_alive < 0),
    ``keep_alive`` (idle time runs: last use + keep_alive; in use: now + keep_alive), or
    ``""`` (not a language model)."""
    now = time.time() if now is None else now
    if entry.version_id in served:
        return None, "slot"
    if entry.pinned:
        return None, "pinned"
    keep = entry.keep_alive_s
    if keep is None:
        return None, ""
    if keep < 0:
        return None, "forever"
    start = now if entry.in_flight else entry.last_used
    return start + keep, "keep_alive"


def expires_at_iso(when: float | None, *, now: float | None = None) -> str:
    """An ISO timestamp for /api/ps: the expiry, or Ollama's own "never" (now + ~292 y)."""
    if when is None:
        moment = datetime.fromtimestamp(time.time() if now is None else now, UTC) + NEVER
    else:
        moment = datetime.fromtimestamp(when, UTC)
    return moment.isoformat().replace("+00:00", "Z")


def keep_alive_set(entry: PoolEntry, seconds: float | None) -> None:
    """A request's keep_alive for this loaded copy (None: the version's default)."""
    if entry.keep_alive_s is None and not is_language_model(entry.model):
        return
    entry.keep_alive_s = entry.spec.keep_alive_s if seconds is None else seconds


def keep_alive_sweep(worker: Worker, *, now: float | None = None) -> list[str]:
    """Unload every language model whose keep-alive ran out; returns their refs."""
    now = time.time() if now is None else now
    expired = []
    for entry in worker.pool.entries():
        if entry.keep_alive_s is None or entry.keep_alive_s < 0:
            continue
        if worker.pool.expire(entry, now):
            log.info(
                "unloading %s: idle for its keep-alive (%g s), no slot serves it",
                entry.ref,
                entry.keep_alive_s,
            )
            expired.append(entry.ref)
    return expired
