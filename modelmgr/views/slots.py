"""What the settings page shows per slot; shared by the page and the events consumer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.template.defaultfilters import filesizeformat

from modelmgr.models import ModelVersion, Slot, Task, VersionStatus

MAX_CANDIDATES = 200


@dataclass
class SlotCard:
    slot: Slot
    active: ModelVersion | None
    previous: ModelVersion | None
    candidates: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    active_value: str = ""
    previous_value: str = ""
    can_change: bool = False  # may set the slot's batching (modelmgr.deploy.batching)
    # value -> the candidate's memory estimate, as the worker's admission counts it
    memory: dict[str, CandidateMemory] = field(default_factory=dict)
    # The least free memory among the workers serving the slot; None when none answers.
    free_bytes: int | None = None
    workers: int = 0  # how many of them answered: the page says "the tightest of N"
    watch: Any = None  # the slot's newest health watch (modelmgr.deploy.watch)

    @property
    def options(self) -> list[tuple[str, str, CandidateMemory | None]]:
        return [(value, label, self.memory.get(value)) for value, label in self.candidates]

    @property
    def is_llm(self) -> bool:
        """A language model slot (its task, or what it serves): it has generation limits
        (modelmgr.deploy.llm_limits)."""
        served = self.active is not None and self.active.model.task == Task.LLM
        return self.slot.task == Task.LLM or served


@dataclass(frozen=True)
class CandidateMemory:
    need_bytes: int
    how: str
    fits: bool | None  # None: the worker's free memory is unknown
    loaded: bool  # the worker holds it already: a switch to it loads nothing

    @property
    def label(self) -> str:
        need = filesizeformat(self.need_bytes).replace("\xa0", " ")
        if self.loaded:
            return f"needs {need}, loaded already"
        if self.fits is None:
            return f"needs {need}"
        return f"needs {need}, {'fits' if self.fits else 'does NOT fit'}"


def qualified_ref(version: ModelVersion) -> str:
    """``owner/name@version``: unambiguous whoever resolves it (staff see every owner)."""
    return f"{version.model.owner.get_username()}/{version.ref}"


def slot_cards(*, user, names: list[str] | None = None) -> list[SlotCard]:
    """Each slot with its active version and the versions the user may switch it to.

    A version is offered when the user can see it, it is available (and trusted if it
    is pickle-based), and ``version_fits_slot`` finds no problem with it. Each offer
    carries its memory estimate (modelmgr.registry.memory_estimate: the figure the
    worker's admission will check) and whether it fits the worker's free memory now.
    """
    from modelmgr.deploy.contract import version_fits_slot
    from modelmgr.registry.memory_estimate import estimate_memory

    slots = Slot.objects.select_related(
        "active_version__model__owner", "previous_version__model__owner"
    ).order_by("name")
    if names is not None:
        slots = slots.filter(name__in=names)
    versions = list(
        ModelVersion.objects.visible_to(user)
        .filter(status=VersionStatus.AVAILABLE)
        .select_related("model__owner")
        .order_by("model__name", "-created_at", "-id")[:MAX_CANDIDATES]
    )
    can_change = bool(user.is_staff or user.is_superuser or user.has_perm("modelmgr.change_slot"))
    from modelmgr.deploy.workers import memory_where, up_workers_asked

    asked = up_workers_asked()
    from modelmgr.deploy.watch_selectors import latest_watches

    watches = latest_watches([slot.name for slot in slots])
    estimates: dict[int, Any] = {}
    cards = []
    for slot in slots:
        # What a candidate must fit into: the tightest worker that serves the slot.
        free, loaded, answered = memory_where(asked, slot.name)
        card = SlotCard(
            slot=slot,
            active=slot.active_version,
            previous=slot.previous_version,
            can_change=can_change,
            free_bytes=free,
            workers=answered,
            watch=watches.get(slot.name),
        )
        if slot.active_version is not None:
            card.active_value = qualified_ref(slot.active_version)
        if slot.previous_version is not None:
            card.previous_value = qualified_ref(slot.previous_version)
        for version in versions:
            if not version.is_deployable() or version_fits_slot(version, slot):
                continue
            label = version.ref
            if version.production_ready:
                label += "  ★ production-ready"
            if version.model.owner_id != user.pk:
                label = f"{version.model.owner.get_username()}/{label}"
            need = estimates.get(version.pk)
            if need is None:
                need = estimates[version.pk] = estimate_memory(version)
            memory = CandidateMemory(
                need.total_bytes,
                need.how,
                None if free is None else need.total_bytes <= free,
                version.pk in loaded,
            )
            value = qualified_ref(version)
            card.candidates.append((value, f"{label}  ({memory.label})"))
            card.memory[value] = memory
        cards.append(card)
    return cards
