"""Items from a producer thread (a generation) to the event loop, in batches.

A hand-off per token (``call_soon_threadsafe`` each time) wakes the event loop for every
token: a write to its wake-up pipe, a pass of the loop and, on a small model, the GIL
taken from the generation thread hundreds of times a second. Here the producer appends
under a lock and wakes the loop only when no wake-up is already on its way, and at most
once per ``interval`` seconds after the loop took the last batch (the first item and the
last one go at once), so the consumer takes every item that arrived meanwhile in one go
(vLLM's ``--stream-interval``, in time rather than tokens).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any


class Handoff:
    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.0):
        self.loop = loop
        self.interval = max(0.0, interval)
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._scheduled = False  # a wake-up is on its way to the loop
        self._ready = asyncio.Event()
        self._taken_at = float("-inf")  # written by the loop, read by the producer

    def put(self, item: Any, *, last: bool = False) -> None:
        """From the producer thread; ``last`` (the end or an error) wakes the loop at once."""
        with self._lock:
            self._items.append(item)
            if self._scheduled and not last:
                return
            self._scheduled = True
        delay = 0.0 if last else self._taken_at + self.interval - time.monotonic()
        try:
            if delay > 0:
                self.loop.call_soon_threadsafe(self._wake_later, delay)
            else:
                self.loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the loop closed under a late producer
            pass

    def _wake_later(self, delay: float) -> None:
        self.loop.call_later(delay, self._ready.set)

    async def take(self) -> list[Any]:
        """In the loop: every item put since the last take (at least one)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                items, self._items = self._items, []
                self._scheduled = False
            if items:  # else a late timer of a batch already taken
                self._taken_at = time.monotonic()
                return items
