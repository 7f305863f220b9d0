"""Reads of health watches (modelmgr.deploy.watch) for the API and the pages; each
sweeps abandoned watches first, so a reader never sees a dead watcher as running."""

from __future__ import annotations

from modelmgr.deploy.watch import watches_sweep
from modelmgr.models import SwitchWatch


def watches_list(*, slot: str | None = None, state: str | None = None, limit: int = 50):
    """Newest first, after a sweep (what a reader sees is never a dead 'running')."""
    watches_sweep()
    rows = SwitchWatch.objects.select_related("slot")
    if slot:
        rows = rows.filter(slot__name=slot)
    if state:
        rows = rows.filter(state=state)
    return list(rows[:limit])


def latest_watches(names: list[str]) -> dict[str, SwitchWatch]:
    """Each slot's newest watch (for the slot cards and the slot API)."""
    watches_sweep()
    found: dict[str, SwitchWatch] = {}
    for watch in SwitchWatch.objects.select_related("slot").filter(slot__name__in=names):
        found.setdefault(watch.slot.name, watch)
    return found
