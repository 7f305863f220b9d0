"""The workers the web process can use: registered rows (modelmgr.models.Worker) with a
fresh heartbeat, each with a client, and which of them serve which slot (placement).

A worker is up while its last heartbeat is younger than MODELMGR_WORKER_DOWN_AFTER of
its own intervals. No worker up (none registered yet, the single worker of `make run`
started before the registry existed, or every one down): the web falls back to
MODELMGR_WORKER_URL exactly as with one worker, so its errors stay today's errors.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from modelmgr.deploy.client import WorkerClient, worker_client
from modelmgr.exceptions import WorkerUnavailable
from modelmgr.models import Slot
from modelmgr.models import Worker as WorkerRow
from modelmgr.registry.validation import InvalidInput

_clients: dict[str, WorkerClient] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class Member:
    """One worker as the web sees it."""

    name: str
    control_url: str
    serve_url: str
    group: str
    up: bool
    heartbeat_at: datetime | None = None
    started_at: datetime | None = None
    device: str = ""
    memory_budget_bytes: int = 0
    memory_free_bytes: int = 0
    registered: bool = True

    @property
    def client(self) -> WorkerClient:
        return client_for(self.control_url)


def client_for(url: str) -> WorkerClient:
    """The pooled client of a worker's control URL (MODELMGR_WORKER_URL's is the usual
    ``worker_client()``, with its Unix socket when set)."""
    if url == settings.MODELMGR_WORKER_URL:
        return worker_client()
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = WorkerClient(
                    url=url,
                    connect_timeout=settings.MODELMGR_WORKER_CONNECT_TIMEOUT_S,
                    timeout=settings.MODELMGR_WORKER_TIMEOUT_S,
                    predict_timeout=settings.MODELMGR_PREDICT_TIMEOUT_S,
                    switch_timeout=settings.MODELMGR_SWITCH_STREAM_TIMEOUT_S,
                )
    return client


def is_up(row: WorkerRow, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    allowed = timedelta(seconds=row.heartbeat_s * settings.MODELMGR_WORKER_DOWN_AFTER)
    return now - row.heartbeat_at <= allowed


def _member(row: WorkerRow, now: datetime) -> Member:
    return Member(
        name=row.name,
        control_url=row.control_url,
        serve_url=row.serve_url,
        group=row.group,
        up=is_up(row, now),
        heartbeat_at=row.heartbeat_at,
        started_at=row.started_at,
        device=row.device,
        memory_budget_bytes=row.memory_budget_bytes,
        memory_free_bytes=row.memory_free_bytes,
    )


def fleet_members() -> list[Member]:
    """Every registered worker, up or down, by name."""
    now = timezone.now()
    return [_member(row, now) for row in WorkerRow.objects.order_by("name")]


def fallback_member() -> Member:
    """The single worker of MODELMGR_WORKER_URL, as when no worker registers."""
    return Member(
        name=worker_client().label,
        control_url=settings.MODELMGR_WORKER_URL,
        serve_url="",
        group="",
        up=True,
        registered=False,
    )


def fleet_up() -> list[Member]:
    """The workers to talk to: the registered ones that are up, else the fallback."""
    up = [member for member in fleet_members() if member.up]
    return up or [fallback_member()]


def placement(names: list[str]) -> dict[str, str]:
    """slot -> the worker group it is restricted to, for the restricted ones."""
    slot_names = {name.partition("#")[0] for name in names}
    rows = Slot.objects.filter(name__in=slot_names).exclude(worker_group="")
    return dict(rows.values_list("name", "worker_group"))


def serves(member: Member, slot: str, groups: dict[str, str]) -> bool:
    """Whether ``member`` serves ``slot`` (an arm key counts as its slot); the fallback
    worker serves everything."""
    wanted = groups.get(slot.partition("#")[0], "")
    return not member.registered or not wanted or member.group == wanted


def slot_members(slot: str) -> list[Member]:
    """The up workers that serve ``slot`` (the MODELMGR_WORKER_URL one when none
    registers): whom to ask about what the slot does now."""
    groups = placement([slot])
    return [member for member in fleet_up() if serves(member, slot, groups)]


def switch_targets_for(slots: dict[str, int | None]) -> tuple[list[tuple[Member, dict]], int]:
    """The up workers a switch of ``slots`` goes to, each with its share of the slots,
    and how many workers are up (registered ones; 0 for the fallback).

    A slot placed on a group with no worker up is refused (WorkerUnavailable): its
    switch could not be served, and the database would name a version nobody loads.
    """
    members = fleet_up()
    groups = placement(list(slots))
    targets = []
    covered: set[str] = set()
    for member in members:
        mine = {slot: vid for slot, vid in slots.items() if serves(member, slot, groups)}
        if mine:
            targets.append((member, mine))
            covered.update(mine)
    missing = [slot for slot in slots if slot not in covered]
    if missing:
        named = [f"{slot} (group {groups.get(slot.partition('#')[0], '')!r})" for slot in missing]
        raise WorkerUnavailable(
            "no inference worker is up in the group that serves " + ", ".join(named)
        )
    return targets, sum(1 for member in members if member.registered)


def worker_for_job(*, name: str = "", slot: str = "") -> Member:
    """The worker to give a one-off job (a profile, a load test, the environment a
    report checks): the up worker called ``name`` when given; else, among the up workers
    (those serving ``slot`` when given), the one with the most free memory at its last
    heartbeat, because these jobs load a copy and evict nothing. The MODELMGR_WORKER_URL
    worker when none registers.

    InvalidInput (422) for a name no worker has; WorkerUnavailable (503) when the named
    worker, or every worker that serves ``slot``, is down.
    """
    if name:
        rows = {member.name: member for member in fleet_members()}
        member = rows.get(name)
        if member is None:
            known = ", ".join(rows) or "none registers"
            raise InvalidInput(f"worker {name!r} is not registered (workers: {known})")
        if not member.up:
            raise WorkerUnavailable(f"worker {name!r} is down (no heartbeat since {_ago(member)})")
        return member
    members = slot_members(slot) if slot else fleet_up()
    if not members:
        raise WorkerUnavailable(f"no inference worker is up in the group that serves {slot}")
    return max(members, key=lambda member: member.memory_free_bytes)


def _ago(member: Member) -> str:
    if member.heartbeat_at is None:
        return "it registered"
    return member.heartbeat_at.isoformat(timespec="seconds")
