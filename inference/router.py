"""The routing table: slot -> loaded model, swapped atomically.

The table is one immutable mapping replaced by a single assignment, so a request sees
either the whole old table or the whole new one, never a mix, and reads it without a
lock. A request holds the entry it started on until it is done (in_flight), so a swap
never pulls a model from under a running request: the replaced model drains, then
unloads in the background.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from inference.errors import NotServed
from inference.pool import ModelPool, PoolEntry
from modelmgr.exceptions import WorkerUnavailable


class Route(NamedTuple):
    entry: PoolEntry
    since: float  # epoch seconds


class Router:
    def __init__(self, pool: ModelPool):
        self.pool = pool
        self._table: Mapping[str, Route] = MappingProxyType({})
        pool.served_ids = self.served_ids

    @property
    def table(self) -> Mapping[str, Route]:
        return self._table

    def served_ids(self) -> set[int]:
        return {route.entry.version_id for route in self._table.values()}

    def actual_state(self) -> dict[str, int]:
        return {slot: route.entry.version_id for slot, route in self._table.items()}

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

    def swap(self, changes: Mapping[str, PoolEntry | None]) -> dict[str, PoolEntry]:
        """Apply ``changes`` (None = stop serving the slot); returns the replaced entries.

        1. Build the new mapping from the current one plus the changes.
        2. Replace the table in one assignment.
        3. Retire each replaced entry no slot serves any more: it drains, then unloads in
           the background (pinned ones stay loaded).
        Callers serialize swaps (the worker's control lock).
        """
        now = time.time()
        table = dict(self._table)
        replaced: dict[str, PoolEntry] = {}
        for slot, entry in changes.items():
            old = table.get(slot)
            if old is not None and old.entry is entry:
                continue
            if old is not None:
                replaced[slot] = old.entry
            if entry is None:
                table.pop(slot, None)
            else:
                table[slot] = Route(entry, now)
        self._table = MappingProxyType(table)
        still_served = self.served_ids()
        for entry in {id(e): e for e in replaced.values()}.values():
            if entry.version_id not in still_served:
                self.pool.retire(entry)
        return replaced
