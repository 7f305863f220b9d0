"""The routing table: slot -> loaded model, swapped atomically.

The table is one immutable mapping replaced by a single assignment, so a request sees
either the whole old table or the whole new one, never a mix, and reads it without a
lock. A request holds the entry it started on until it is done (in_flight), so a swap
never pulls a model from under a running request: the replaced model drains, then
unloads in the background.

A route may also carry a canary (a second version answering ``share`` of the slot's
requests, sticky per client key) and a shadow (a version every request is mirrored to,
off the request path). The switch protocol names them as arm keys, ``slot#canary`` and
``slot#shadow`` (``#`` cannot occur in a slot's slug), so the switch and the reconcile
treat them like slots: loaded and warmed beside, swapped in the same one assignment.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from inference.errors import NotServed
from inference.pool import ModelPool, PoolEntry
from modelmgr.exceptions import WorkerUnavailable

ARM_SEP = "#"
CANARY, SHADOW = "canary", "shadow"


def arm_key(slot: str, arm: str) -> str:
    return f"{slot}{ARM_SEP}{arm}"


def split_key(key: str) -> tuple[str, str]:
    """``slot#canary`` -> (slot, canary); a plain slot -> (slot, "primary")."""
    slot, _, arm = key.partition(ARM_SEP)
    return slot, arm or "primary"


def canary_bucket(slot: str, client_key: str) -> float:
    """Where a client key falls in [0, 1) for a slot: the same key always lands in the same
    place (any process, any worker), so a canary at share s takes the keys below s."""
    digest = hashlib.blake2b(f"{slot}\0{client_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Route(NamedTuple):
    entry: PoolEntry
    since: float  # epoch seconds
    canary: PoolEntry | None = None
    share: float = 0.0  # of the requests the canary answers
    shadow: PoolEntry | None = None

    def entries(self) -> list[PoolEntry]:
        return [e for e in (self.entry, self.canary, self.shadow) if e is not None]


class Pick(NamedTuple):
    """What one request runs on: the arm that answers it, and the shadow (if any, held
    too) its inputs are mirrored to."""

    entry: PoolEntry
    arm: str  # primary | canary
    shadow: PoolEntry | None


class Router:
    def __init__(self, pool: ModelPool):
        self.pool = pool
        self._table: Mapping[str, Route] = MappingProxyType({})
        pool.served_ids = self.served_ids

    @property
    def table(self) -> Mapping[str, Route]:
        return self._table

    def served_ids(self) -> set[int]:
        return {e.version_id for route in self._table.values() for e in route.entries()}

    def actual_state(self) -> dict[str, int]:
        """slot -> version id, plus ``slot#canary`` / ``slot#shadow`` for the arms."""
        state = {}
        for slot, route in self._table.items():
            state[slot] = route.entry.version_id
            if route.canary is not None:
                state[arm_key(slot, CANARY)] = route.canary.version_id
            if route.shadow is not None:
                state[arm_key(slot, SHADOW)] = route.shadow.version_id
        return state

    def actual_shares(self) -> dict[str, float]:
        return {slot: r.share for slot, r in self._table.items() if r.canary is not None}

    def acquire_arm(self, slot: str, client_key: str | None = None) -> Pick:
        """Like ``acquire``, choosing the arm: the canary answers ``share`` of the
        requests (by the client key's bucket when there is one, else at random). The
        shadow is held too when it can be; a shadow that cannot is simply skipped."""
        for _ in range(1000):
            route = self._table.get(slot)
            if route is None:
                raise NotServed(f"slot {slot} is not served")
            entry, arm = route.entry, "primary"
            if route.canary is not None and route.share > 0:
                draw = random.random() if client_key is None else canary_bucket(slot, client_key)
                if draw < route.share:
                    entry, arm = route.canary, CANARY
            if not self.pool.try_acquire(entry):
                continue
            shadow = route.shadow
            if shadow is not None and not self.pool.try_acquire(shadow):
                shadow = None
            return Pick(entry, arm, shadow)
        raise WorkerUnavailable(f"slot {slot} is being switched; retry")

    def acquire(self, slot: str) -> PoolEntry:
        """The entry serving ``slot`` now, held until ``release``.

        An entry that finished draining between the table read and the acquire is
        refused by the pool; by then a newer table is in place, so read again.
        """
        for _ in range(1000):
            route = self._table.get(slot)
            if route is None:
                raise NotServed(f"slot {slot} is not served")
            if self.pool.try_acquire(route.entry):
                return route.entry
        raise WorkerUnavailable(f"slot {slot} is being switched; retry")

    def release(self, entry: PoolEntry) -> None:
        self.pool.release(entry)

    def swap(
        self,
        changes: Mapping[str, PoolEntry | None],
        shares: Mapping[str, float] | None = None,
    ) -> dict[str, PoolEntry]:
        """Apply ``changes`` (None = stop serving the slot, or drop the arm); returns the
        replaced entries (by change key). ``shares``: slot -> its canary's new share.

        1. Build the new mapping from the current one plus the changes: slots first (a
           slot that stops serving drops its arms too), then the arms of served slots.
        2. Replace the table in one assignment.
        3. Retire each replaced entry no slot serves any more: it drains, then unloads in
           the background (pinned ones stay loaded).
        Callers serialize swaps (the worker's control lock).
        """
        now = time.time()
        table = dict(self._table)
        replaced: dict[str, PoolEntry] = {}
        for slot, entry in changes.items():
            if ARM_SEP in slot:
                continue
            old = table.get(slot)
            if old is not None and old.entry is entry:
                continue
            if old is not None:
                replaced[slot] = old.entry
                for arm in (CANARY, SHADOW):
                    if entry is None and getattr(old, arm) is not None:
                        replaced[arm_key(slot, arm)] = getattr(old, arm)
            if entry is None:
                table.pop(slot, None)
            else:
                table[slot] = old._replace(entry=entry, since=now) if old else Route(entry, now)
        for key, entry in changes.items():
            slot, arm = split_key(key)
            route = table.get(slot)
            if arm not in (CANARY, SHADOW) or route is None or getattr(route, arm) is entry:
                continue
            if getattr(route, arm) is not None:
                replaced[key] = getattr(route, arm)
            table[slot] = route._replace(**{arm: entry})
            if arm == CANARY and entry is None:
                table[slot] = table[slot]._replace(share=0.0)
        for slot, share in (shares or {}).items():
            if slot in table:
                table[slot] = table[slot]._replace(share=float(share))
        self._table = MappingProxyType(table)
        still_served = self.served_ids()
        for entry in {id(e): e for e in replaced.values()}.values():
            if entry.version_id not in still_served:
                self.pool.retire(entry)
        return replaced
