"""Relay the worker's switch progress to browsers (the ``events`` Channels group)."""

from __future__ import annotations

from typing import Any

from modelmgr.events import events_publish


def switch_progress_publish(*, switch_id: str, event: dict[str, Any]) -> None:
    """Publish one worker NDJSON event as ``switch.progress``; never raises.

    The worker's ``event`` key ("phase", "slot_done", "result") is kept; ``type`` is the
    consumer's handler and would clash, so a stray one from the worker is dropped.
    """
    payload = {key: value for key, value in event.items() if key != "type"}
    payload["switch_id"] = switch_id
    events_publish("switch.progress", payload)
