"""Which worker answers the web port's next prediction: the healthy worker serving the
slot with the fewest requests in flight from this process.

The up workers and the slots' placement (modelmgr.deploy.fleet) are read from the
database at most every MODELMGR_FLEET_REFRESH_S, not per request. A worker that fails a
request (unreachable, or 503 while it restores) is skipped for a few seconds and the
request goes to the next one, so a dead worker costs no failed request even before its
missed heartbeats mark it down. Counts are per web process (several web processes each
balance their own share).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings

from modelmgr.deploy.fleet import Member, fleet_up, placement, serves
from modelmgr.exceptions import WorkerUnavailable
from modelmgr.models import Slot

T = TypeVar("T")
SUSPECT_S = 2.0  # how long a worker that failed a request is skipped


@dataclass
class _View:
    key: tuple
    expires: float
    members: list[Member]
    groups: dict[str, str]


@dataclass
class Spread:
    in_flight: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    suspect: dict[str, float] = field(default_factory=dict)
    view: _View | None = None
    turn: int = 0

    async def candidates(self, slot: str) -> list[Member]:
        """The workers to try for ``slot``, best first."""
        view = await self._view()
        members = [m for m in view.members if serves(m, slot, view.groups)] or view.members
        now = time.monotonic()
        healthy = [m for m in members if self.suspect.get(m.control_url, 0) <= now]
        # Ties (every worker idle) take turns: rotate, then a stable sort by in flight.
        self.turn = (self.turn + 1) % max(1, len(healthy))
        healthy = healthy[self.turn :] + healthy[: self.turn]
        ordered = sorted(healthy, key=lambda m: self.in_flight[m.control_url])
        # Suspects last: still better than refusing when every worker failed recently.
        return ordered + [m for m in members if m not in healthy]

    async def first_answer(
        self, slot: str, send: Callable[[Member, bool], Awaitable[T | None]]
    ) -> T:
        """``send(member, last)`` to the candidates for ``slot``, best first, until one
        answers. A worker that cannot be reached (WorkerUnavailable), or for which
        ``send`` returns None (it answered 503 while another worker is left), is
        skipped for a while and the next one tried; the last one's error is raised."""
        members = await self.candidates(slot)
        for index, member in enumerate(members):
            last = index == len(members) - 1
            try:
                answer = await send(member, last)
            except WorkerUnavailable:
                self.failed(member)
                if last:
                    raise
                continue
            if answer is None:
                self.failed(member)
                continue
            return answer
        raise WorkerUnavailable("no inference worker is up")  # members is never empty

    def failed(self, member: Member) -> None:
        self.suspect[member.control_url] = time.monotonic() + SUSPECT_S

    async def _view(self) -> _View:
        key = (settings.MODELMGR_WORKER_URL,)
        view = self.view
        if view is None or view.key != key or view.expires <= time.monotonic():
            members, groups = await sync_to_async(_read)()
            view = self.view = _View(
                key, time.monotonic() + settings.MODELMGR_FLEET_REFRESH_S, members, groups
            )
        return view


def _read() -> tuple[list[Member], dict[str, str]]:
    names = list(Slot.objects.exclude(worker_group="").values_list("name", flat=True))
    return fleet_up(), placement(names)


spread = Spread()
