"""A switch over every worker that serves its slots, all or nothing, in two phases.

``fleet_switch_stream`` behaves like one worker's ``switch_stream``: it yields the
progress events (each with the ``worker`` it came from) and ends with one ``result``
event; the result's ``workers`` says what each worker did, for the audit row.

1. Targets: the up workers (modelmgr.deploy.fleet) that serve any of the slots, each
   with its share of them (placement). One target: its /switch, as with one worker
   (the workers are named in the events and the result only when several are up).
2. Phase 1: every target's /prepare runs at once (validate, load, warm up; the worker
   then holds its control lock). Their events are relayed as they come.
3. Any failure (a refusal, a load error, a worker unreachable or breaking off): /abort
   on every target (each unloads what it prepared), and a failed result naming the
   worker and the cause per slot. Nothing swapped anywhere.
4. Phase 2: /commit on every target at once (the swap). A commit that fails after
   others swapped raises WorkerUnavailable: the caller does not commit the database
   and sends every worker back to it (modelmgr.deploy.switch._nudge_back).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from modelmgr.deploy.client import WorkerRefused
from modelmgr.deploy.fleet import Member, switch_targets_for
from modelmgr.exceptions import ModelmgrError, WorkerUnavailable


def fleet_switch_stream(
    *, switch_id: str, slots: dict[str, int | None], shares: dict[str, float] | None = None
) -> Iterator[dict[str, Any]]:
    targets, up = switch_targets_for(slots)
    if len(targets) == 1:
        member, mine = targets[0]
        yield from _single(member, switch_id, mine, shares, named=up > 1)
        return
    prepared = yield from _phase_one(targets, switch_id, shares)
    failed = {name: why for name, (ok, why, _) in prepared.items() if not ok}
    if failed:
        _abort_all(targets, switch_id)
        yield _failure(targets, prepared, failed)
        return
    result = _commit_all(targets, switch_id, prepared)
    for name, events in result.pop("progress").items():
        for event in events:  # the swap's progress on each worker, as phase 1's was
            yield {**event, "worker": name}
    yield result


def _single(
    member: Member, switch_id: str, slots: dict, shares, *, named: bool
) -> Iterator[dict[str, Any]]:
    """One worker's /switch; ``named``: several workers are up (placement picked this
    one), so the events and the result name it; a lone worker's stay as they were."""
    for event in member.client.switch_stream(switch_id=switch_id, slots=slots, shares=shares):
        if not named:
            yield event
            continue
        if event.get("event") == "result":
            event = {**event, "workers": {member.name: "ok" if event.get("ok") else "failed"}}
        yield {**event, "worker": member.name}


def _phase_one(targets, switch_id: str, shares):
    """Run every /prepare at once; yield their events; return name -> (ok, cause, result)."""
    events: queue.Queue = queue.Queue()
    outcome: dict[str, tuple[bool, str, dict]] = {}

    def prepare(member: Member, mine: dict) -> None:
        result: dict | None = None
        try:
            for event in member.client.switch_stream(
                switch_id=switch_id, slots=mine, shares=shares, path="/prepare"
            ):
                if event.get("event") == "result":
                    result = event
                else:
                    events.put({**event, "worker": member.name})
        except WorkerRefused as exc:
            outcome[member.name] = (False, exc.detail, {"status": exc.status})
            return
        except ModelmgrError as exc:
            outcome[member.name] = (False, exc.detail, {"status": 503})
            return
        except Exception as exc:  # noqa: BLE001 - a bug here must abort, never commit
            outcome[member.name] = (False, f"asking it failed: {exc!r}", {"status": 503})
            return
        finally:
            events.put(None)
        if result is None:
            cause = f"the inference worker at {member.client.label} stopped answering mid-switch"
            outcome[member.name] = (False, cause, {"status": 503})
        elif not result.get("ok"):
            errors = result.get("errors") or {}
            cause = "; ".join(f"{slot}: {why}" for slot, why in errors.items()) or "refused"
            outcome[member.name] = (False, cause, result)
        else:
            outcome[member.name] = (True, "", result)

    threads = [
        threading.Thread(target=prepare, args=target, name=f"prepare-{target[0].name}")
        for target in targets
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    while running:
        event = events.get()
        if event is None:
            running -= 1
        else:
            yield event
    for thread in threads:
        thread.join()
    return outcome


def _abort_all(targets, switch_id: str) -> None:
    def abort(member: Member) -> None:
        try:
            member.client.call("POST", "/abort", {"switch_id": switch_id})
        except ModelmgrError:
            pass  # down or gone: its prepared switch expires (MODELMGR_SWITCH_PREPARE_TTL_S)

    with ThreadPoolExecutor(len(targets)) as pool:
        list(pool.map(abort, [member for member, _ in targets]))


def _failure(targets, prepared: dict, failed: dict[str, str]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    status = 409
    for member, mine in targets:
        if member.name not in failed:
            continue
        ok, why, result = prepared[member.name]
        per_slot = result.get("errors") or {}
        for slot in mine:
            cause = per_slot.get(slot) or why
            errors.setdefault(slot, f"worker {member.name}: {cause}")
        if result.get("status") == 503:
            status = 503
    workers = {
        member.name: f"failed: {failed[member.name]}" if member.name in failed else "aborted"
        for member, _ in targets
    }
    return {"event": "result", "ok": False, "errors": errors, "status": status, "workers": workers}


def _commit_all(targets, switch_id: str, prepared: dict) -> dict[str, Any]:
    def commit(member: Member) -> tuple[str, dict | str]:
        try:
            return member.name, member.client.call("POST", "/commit", {"switch_id": switch_id})
        except ModelmgrError as exc:
            return member.name, exc.detail

    with ThreadPoolExecutor(len(targets)) as pool:
        results = dict(pool.map(commit, [member for member, _ in targets]))
    broken = {name: why for name, why in results.items() if not isinstance(why, dict)}
    if broken:
        raise WorkerUnavailable(
            "the swap failed on "
            + "; ".join(f"worker {name}: {why}" for name, why in broken.items())
            + " after every worker had prepared"
        )
    slots: dict[str, dict] = {}
    for name, result in results.items():
        for slot, done in (result.get("slots") or {}).items():
            mine = slots.setdefault(slot, {**done, "workers": []})
            mine["workers"].append(name)
            for key in ("load_ms", "warmup_ms"):
                mine[key] = max(float(mine.get(key) or 0), float(done.get(key) or 0))
    return {
        "event": "result",
        "ok": True,
        "swap_ms": max(float(r.get("swap_ms") or 0) for r in results.values()),
        "slots": slots,
        "workers": dict.fromkeys(results, "ok"),
        "progress": {name: r.get("events") or [] for name, r in results.items()},
    }
