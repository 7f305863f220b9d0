"""The worker's side of a switch: validate, load in parallel, warm up, swap, drain.

Events go to ``emit`` as they happen (the server streams them as NDJSON lines):
``phase`` (validating, loading, warming, swapping, unloading), ``slot_done`` per slot
after the swap, then one ``result``: ``swap_ms`` is the swap step alone (the routing table
replacement), ``total_ms`` the whole switch in the worker, and each slot's ``load_ms`` and
``warmup_ms`` its load and warm-up (0 for a model already loaded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from inference.materialize import version_materialize
from inference.metrics import switch_record
from inference.pool import DRAINING, UNLOADED, UNLOADING, LoadJob, PoolEntry, short_error
from inference.router import split_key
from inference.runtimes.base import runtime_for
from inference.signature import contract_mismatches
from inference.versions import VersionSpec, slot_contracts, version_spec_get
from modelmgr.exceptions import ModelmgrError, NotDeployable

if TYPE_CHECKING:
    from inference.worker import Worker

log = logging.getLogger("inference")
Emit = Callable[[dict], None]


@dataclass(eq=False)
class _Load:
    """One version to bring in, shared by every requested slot naming it."""

    spec: VersionSpec
    signature: dict
    slots: list[str] = field(default_factory=list)
    entry: PoolEntry | None = None
    job: LoadJob | None = None
    reserved: int = 0
    fresh: bool = False
    revived: bool = False
    error: str = ""


def phase(emit: Emit, name: str, slot: str, ref: str | None) -> None:
    emit({"event": "phase", "phase": name, "slot": slot, "ref": ref, "ts": round(time.time(), 3)})


@dataclass(eq=False)
class Prepared:
    """A switch after its phase 1 (validated, loaded, warmed), before its swap."""

    slots: Mapping[str, int | None]
    switch_id: str
    source: str
    shares: Mapping[str, float] | None
    started: float
    loads: dict[int, _Load] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def switch_apply(
    worker: Worker,
    *,
    slots: Mapping[str, int | None],
    emit: Emit,
    atomic: bool,
    switch_id: str = "",
    source: str = "switch",
    arrived: float | None = None,
    shares: Mapping[str, float] | None = None,
) -> dict:
    """Bring ``slots`` to the given version ids (None: stop serving). Caller holds the
    worker's control lock; ``arrived`` is when a /switch asked (time.monotonic()).

    1. Validate every version: exists, deployable, has a runtime, fits the slot's
       contract, fits memory (reusing a loaded model; evicting idle unserved ones). A
       model already in memory has its files' sha256 checked again here (a load checks
       its own while it materializes them): the artifacts must be intact at switch time.
    2. Load the missing versions in parallel, each warmed up, each under the timeout.
    3. atomic (a /switch): any failure unloads what this switch loaded and swaps
       nothing. Otherwise (reconcile): the slots that loaded are swapped, others fail.
    4. Swap all those slots in one routing-table replacement (timed alone: ``swap_ms``).
    5. Replaced models drain and unload in the background.

    Steps 1-2 are ``switch_prepare``, 3 on failure ``switch_abort``, 4-5
    ``switch_commit``: a fan-out switch over several workers (/prepare, /commit,
    /abort) runs them as its two phases, with every worker's phase 1 done before any
    swaps.

    A key may name a slot's arm (``slot#canary``, ``slot#shadow``: inference.router); it
    is held to its slot's contract. ``shares`` (slot -> canary share) swap with the rest.
    """
    prepared = switch_prepare(
        worker,
        slots=slots,
        emit=emit,
        atomic=atomic,
        switch_id=switch_id,
        source=source,
        shares=shares,
    )
    if atomic and prepared.errors:
        return switch_abort(worker, prepared, emit)
    return switch_commit(worker, prepared, emit, arrived=arrived)


def switch_prepare(
    worker: Worker,
    *,
    slots: Mapping[str, int | None],
    emit: Emit,
    atomic: bool,
    switch_id: str = "",
    source: str = "switch",
    shares: Mapping[str, float] | None = None,
) -> Prepared:
    """Steps 1-2 of ``switch_apply``; ``atomic`` stops at the first step with errors.
    The caller holds the control lock until ``switch_commit`` or ``switch_abort``."""
    prepared = Prepared(
        slots=slots,
        switch_id=switch_id,
        source=source,
        shares=shares,
        started=time.perf_counter(),
    )
    errors, loads = prepared.errors, prepared.loads
    contracts = slot_contracts(list({split_key(key)[0] for key in slots}))
    contracts.update({k: contracts[split_key(k)[0]] for k in slots if split_key(k)[0] in contracts})
    for slot, version_id in slots.items():
        if version_id is None:
            phase(emit, "validating", slot, None)
            continue
        try:
            load = loads.get(version_id) or _validate(version_id, slot, contracts.get(slot))
        except ModelmgrError as exc:
            phase(emit, "validating", slot, None)
            errors[slot] = exc.detail
            continue
        phase(emit, "validating", slot, load.spec.ref)
        problems = contract_mismatches(load.spec.signature_for(None), contracts.get(slot))
        if problems:
            errors[slot] = f"{load.spec.ref} does not fit slot {slot}'s contract: " + "; ".join(
                problems
            )
            continue
        loads[version_id] = load
        load.slots.append(slot)
    for load in loads.values():
        load.entry, load.revived = worker.pool.reuse(load.spec.id)
        if load.entry is not None:
            _recheck_files(worker, load)
        else:
            try:
                load.reserved = worker.pool.reserve(load.spec)
            except ModelmgrError as exc:
                load.error = exc.detail
    _collect(loads, errors)
    if atomic and errors:
        return prepared

    for load in loads.values():
        if load.entry is not None or load.error:
            continue
        for slot in load.slots:
            phase(emit, "loading", slot, load.spec.ref)
        load.job = worker.pool.start_load(
            load.spec,
            signature=load.signature,
            reserved=load.reserved,
            progress=lambda name, load=load: [
                phase(emit, name, s, load.spec.ref) for s in load.slots
            ],
        )
    for load in loads.values():
        if load.job is None:
            continue
        try:
            load.entry = worker.pool.wait(load.job)
            load.fresh = True
        except ModelmgrError as exc:
            load.error = exc.detail
        except Exception as exc:  # a runtime bug must not take the switch down
            load.error = f"loading {load.spec.ref} failed: {short_error(exc)}"
    _collect(loads, errors)
    return prepared


def prepared_report(prepared: Prepared) -> dict:
    """Per slot, what phase 1 did (for a /prepare's result): ref, load and warm-up."""
    report = {}
    for load in prepared.loads.values():
        if load.entry is None or load.error:
            continue
        for slot in load.slots:
            report[slot] = {
                "ref": load.entry.ref,
                "load_ms": round(load.entry.load_ms, 3) if load.fresh else 0.0,
                "warmup_ms": round(load.entry.warmup_ms, 3) if load.fresh else 0.0,
            }
    return report


def switch_commit(
    worker: Worker, prepared: Prepared, emit: Emit, *, arrived: float | None = None
) -> dict:
    """Steps 4-5 of ``switch_apply``: swap what phase 1 loaded, in one replacement."""
    slots, loads, errors = prepared.slots, prepared.loads, prepared.errors
    source, switch_id, started = prepared.source, prepared.switch_id, prepared.started
    changes: dict[str, PoolEntry | None] = {
        slot: None for slot, version_id in slots.items() if version_id is None
    }
    for load in loads.values():
        if load.entry is not None and not load.error:
            changes.update(dict.fromkeys(load.slots, load.entry))
    for slot, entry in changes.items():
        phase(emit, "swapping", slot, entry.ref if entry else None)
    swap_started = time.perf_counter()
    replaced = worker.router.swap(changes, prepared.shares)
    swapped = time.perf_counter()
    swap_ms, total_ms = (swapped - swap_started) * 1000, (swapped - started) * 1000
    if source == "switch":
        worker.note_switched(list(changes), arrived=arrived)
    done = {}
    for slot, entry in changes.items():
        fresh = entry is not None and any(ld.fresh and ld.entry is entry for ld in loads.values())
        done[slot] = {
            "ref": entry.ref if entry else None,
            "load_ms": round(entry.load_ms, 3) if fresh else 0.0,
            "warmup_ms": round(entry.warmup_ms, 3) if fresh else 0.0,
        }
        emit({"event": "slot_done", "slot": slot, **done[slot], "reused": not fresh})
    for slot, old in replaced.items():
        if old.state in (DRAINING, UNLOADING, UNLOADED):
            phase(emit, "unloading", slot, old.ref)
    result = {
        "event": "result",
        "ok": not errors,
        "swap_ms": round(swap_ms, 3),
        "total_ms": round(total_ms, 3),
        "slots": done,
    }
    if errors:
        result["errors"] = errors
    switch_record(
        source=source, ok=not errors, seconds=total_ms / 1000, swap_seconds=swap_ms / 1000
    )
    log.info(
        "%s %s: %s in %.1f ms (swap %.3f ms)%s",
        source,
        switch_id or "-",
        ", ".join(f"{s} -> {d['ref']}" for s, d in done.items()) or "no change",
        total_ms,
        swap_ms,
        f"; errors: {errors}" if errors else "",
    )
    emit(result)
    return result


def _validate(version_id: int, slot: str, contract: dict | None) -> _Load:
    spec = version_spec_get(version_id=version_id)
    problem = spec.deployable_problem()
    if problem:
        raise NotDeployable(problem)
    runtime_for(spec.framework)  # imports the runtime module now, off the serving path
    return _Load(spec=spec, signature=spec.signature_for(contract))


def _recheck_files(worker: Worker, load: _Load) -> None:
    """A model already in memory is switched to only while its stored files are intact
    (cheap when unchanged: see inference.materialize). A revived one goes back to
    draining when they are not."""
    if load.spec.provider is not None:
        return  # provided: no files (its provider is checked when it is loaded)
    try:
        version_materialize(spec=load.spec)
    except ModelmgrError as exc:
        load.error = exc.detail
    except OSError as exc:
        load.error = f"checking the files of {load.spec.ref} failed: {short_error(exc)}"
    else:
        return
    if load.revived:
        worker.pool.retire(load.entry)
        load.revived = False
    load.entry = None


def _collect(loads: dict[int, _Load], errors: dict[str, str]) -> None:
    for load in loads.values():
        if load.error:
            errors.update(dict.fromkeys(load.slots, load.error))


def switch_abort(worker: Worker, prepared: Prepared, emit: Emit) -> dict:
    """Undo a switch that swapped nothing: what it loaded or revived goes again."""
    loads, errors, switch_id = prepared.loads, prepared.errors, prepared.switch_id
    source, started = prepared.source, prepared.started
    for load in loads.values():
        if load.reserved and load.job is None:
            worker.pool.unreserve(load.reserved)
        if load.entry is not None and (load.fresh or load.revived):
            worker.pool.retire(load.entry)
    switch_record(source=source, ok=False, seconds=time.perf_counter() - started, swap_seconds=None)
    log.info("switch %s failed, nothing swapped: %s", switch_id or "-", errors)
    result = {"event": "result", "ok": False, "errors": errors}
    emit(result)
    return result
