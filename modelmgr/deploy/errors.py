"""Deploy errors that name a cause per slot: the API answers {"detail", "slots": {slot: cause}}."""

from __future__ import annotations

from modelmgr.exceptions import ModelmgrError, WorkerUnavailable


class SlotErrors(ModelmgrError):
    """A switch (or slot change) refused; nothing changed. ``slots`` maps slot -> cause."""

    status = 409

    def __init__(
        self, detail: str, *, slots: dict[str, str] | None = None, status: int | None = None
    ):
        super().__init__(detail)
        self.slots = dict(slots or {})
        if status is not None:
            self.status = status

    @classmethod
    def from_causes(cls, summary: str, causes: dict[str, tuple[int, str]]) -> SlotErrors:
        """One error from per-slot (status, cause) pairs.

        The HTTP status is the one every cause shares, else 422 (several kinds of
        problem in one request); the detail lists every slot's cause.
        """
        statuses = {status for status, _ in causes.values()}
        status = statuses.pop() if len(statuses) == 1 else 422
        listed = "; ".join(f"{slot}: {cause}" for slot, (_, cause) in causes.items())
        return cls(
            f"{summary}: {listed}", slots={s: c for s, (_, c) in causes.items()}, status=status
        )


class SwitchWorkerUnavailable(SlotErrors, WorkerUnavailable):
    """The worker could not be reached, or stopped answering mid-switch."""

    status = 503
