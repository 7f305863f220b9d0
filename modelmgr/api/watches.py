"""Health watches of switches (modelmgr.deploy.watch): their state, figures and verdict."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from modelmgr.deploy.errors import SlotErrors
from modelmgr.deploy.watch import watch_as_dict
from modelmgr.deploy.watch_rules import Thresholds, thresholds_parse
from modelmgr.deploy.watch_selectors import watches_list
from modelmgr.exceptions import NotFound
from modelmgr.models import Slot, SwitchWatch, WatchState
from modelmgr.registry.validation import InvalidInput

router = Router(tags=["slots"])


def watch_of(request: HttpRequest) -> Thresholds | None:
    """The ``watch`` of a wrapped switch body ({"slots": ..., "watch": {...}}), checked
    (422 naming the field) before anything switches; None without one."""
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None  # switch_body answers that one
    if not isinstance(body, dict) or not isinstance(body.get("slots"), dict):
        return None
    if body.get("watch") is None:
        return None
    try:
        return thresholds_parse(body["watch"])
    except InvalidInput as exc:
        raise SlotErrors(exc.detail, status=422) from None


class WatchOut(Schema):
    id: int
    slot: str
    version: str = Field(description="owner/name@version watched")
    previous: str | None = Field(description="what a regression rolls back to")
    switch_id: str | None
    state: str = Field(
        description="running, passed, inconclusive (fewer than min_requests), rolled_back, "
        "rollback_failed, superseded (switched meanwhile), abandoned (its watcher died)"
    )
    verdict: str = Field(description="the figures in words: the reason of the state")
    thresholds: dict[str, Any]
    baseline: dict[str, Any] = Field(description="the previous version before the switch")
    figures: dict[str, Any] = Field(description="the watched version since the switch")
    started_at: datetime
    deadline_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime
    started_by: str


class WatchFilters(Schema):
    slot: str | None = None
    state: WatchState | None = None
    limit: int = Field(50, ge=1, le=500)


@router.get("/switch/watches", response=list[WatchOut], summary="List health watches")
def list_watches(request: HttpRequest, filters: Query[WatchFilters]):
    """Newest first. A watch whose watcher died (its web process stopped) is reported as
    ``abandoned``, never left ``running`` or passed."""
    return [
        watch_as_dict(w)
        for w in watches_list(slot=filters.slot, state=filters.state, limit=filters.limit)
    ]


@router.get("/switch/watches/{watch_id}", response=WatchOut, summary="Show a health watch")
def get_watch(request: HttpRequest, watch_id: int):
    watches_list(limit=1)  # sweeps abandoned watches first
    watch = SwitchWatch.objects.select_related("slot").filter(pk=watch_id).first()
    if watch is None:
        raise NotFound(f"there is no watch {watch_id}")
    return watch_as_dict(watch)


@router.get("/slots/{slot}/watches", response=list[WatchOut], summary="A slot's health watches")
def slot_watches(request: HttpRequest, slot: str):
    if not Slot.objects.filter(name=slot).exists():
        raise NotFound(f"there is no slot named {slot!r}")
    return [watch_as_dict(w) for w in watches_list(slot=slot)]
