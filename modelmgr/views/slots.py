"""What the settings page shows per slot; shared by the page and the events consumer."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelmgr.models import ModelVersion, Slot, VersionStatus

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


def qualified_ref(version: ModelVersion) -> str:
    """``owner/name@version``: unambiguous whoever resolves it (staff see every owner)."""
    return f"{version.model.owner.get_username()}/{version.ref}"


def slot_cards(*, user, names: list[str] | None = None) -> list[SlotCard]:
    """Each slot with its active version and the versions the user may switch it to.

    A version is offered when the user can see it, it is available (and trusted if it
    is pickle-based), and ``version_fits_slot`` finds no problem with it.
    """
    from modelmgr.deploy.contract import version_fits_slot

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
    cards = []
    for slot in slots:
        card = SlotCard(
            slot=slot,
            active=slot.active_version,
            previous=slot.previous_version,
            can_change=can_change,
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
            card.candidates.append((qualified_ref(version), label))
        cards.append(card)
    return cards
