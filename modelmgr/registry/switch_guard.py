"""Deletes and archives of versions wait for a running switch, holding its lock.

A switch loads its versions in the worker for seconds or minutes before it commits.
A version deleted meanwhile made that commit fail (a raw "FOREIGN KEY constraint
failed" answered as "nothing changed") after the worker had already served the
deleted version for a moment. Taking the switch lock (modelmgr.deploy.lock) makes such
a change run before or after a switch, never during one: after the switch it is
judged against the new state (a version the switch made active is then in use, 409).
Waiting is bounded by MODELMGR_SWITCH_LOCK_TIMEOUT_S, then the change is refused (409).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from modelmgr.exceptions import VersionConflict


class SwitchInProgress(VersionConflict):
    """A switch held the lock for longer than a registry change may wait."""


@contextmanager
def outside_switches(*, doing: str) -> Iterator[None]:
    """Hold the switch lock for ``doing`` ("deleting det@1"); 409 when a switch keeps it."""
    from modelmgr.deploy.errors import SlotErrors
    from modelmgr.deploy.lock import switch_lock

    with ExitStack() as stack:
        try:
            stack.enter_context(switch_lock(switch_id=doing, slots=[]))
        except SlotErrors as exc:
            cause = exc.detail.removeprefix("switch refused, nothing changed: ")
            raise SwitchInProgress(f"{doing} refused, nothing changed: {cause}") from None
        yield
