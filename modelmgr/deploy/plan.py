"""Step 1 of a switch: check every requested assignment, collecting one cause per slot.

Who may switch: staff, superusers and users with the ``modelmgr.change_slot``
permission switch any slot to any version they can see. Anyone else may switch a slot
only when they own every version involved: the one they ask for and the one the slot
serves now (an empty slot involves only the new one). ``actor=None`` is the system
(management commands): allowed everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelmgr.deploy.contract import version_fits_slot
from modelmgr.deploy.errors import SlotErrors
from modelmgr.deploy.gate import gate_failures
from modelmgr.exceptions import ModelmgrError, NotFound
from modelmgr.models import ModelVersion, Slot, VersionStatus
from modelmgr.refs import parse_ref

# What a slot is asked to serve: a ref, a version row (rollback), or None (stop serving).
Target = str | ModelVersion | None


class SystemActor:
    """Stands in for ``actor=None``: sees everything; audited as 'system'."""

    pk = None
    is_staff = True
    is_superuser = True
    is_authenticated = False
    is_active = True

    def has_perm(self, perm: str) -> bool:
        return True

    def get_username(self) -> str:
        return "system"


def as_actor(actor):
    return SystemActor() if actor is None else actor


def may_manage_slots(actor) -> bool:
    actor = as_actor(actor)
    return bool(actor.is_staff or actor.is_superuser or actor.has_perm("modelmgr.change_slot"))


@dataclass
class Step:
    slot: Slot
    current: ModelVersion | None
    target: ModelVersion | None
    # The quality-gate failures a forced switch overrides (modelmgr.deploy.gate).
    overridden: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return (self.current.pk if self.current else None) == (
            self.target.pk if self.target else None
        )


def _resolve(actor, target: Target) -> ModelVersion | None:
    from modelmgr.registry.selectors import version_resolve

    if target is None:
        return None
    if isinstance(target, ModelVersion):
        found = (
            ModelVersion.objects.visible_to(actor)
            .select_related("model__owner")
            .filter(pk=target.pk)
            .first()
        )
        if found is None:
            raise NotFound(f"version {target.ref} no longer exists")
        return found
    parse_ref(target)  # a malformed ref is a 422 before any lookup
    return version_resolve(user=actor, ref=target)


def _deployable_problem(version: ModelVersion) -> str:
    if version.status != VersionStatus.AVAILABLE:
        reason = (
            f" ({version.error})" if version.status == VersionStatus.ERROR and version.error else ""
        )
        return f"{version.ref} is {version.status}{reason}, not available"
    if version.unsafe and not version.trusted:
        return (
            f"{version.ref} is a pickled (unsafe) artifact; an administrator must mark it "
            "trusted before it can be deployed"
        )
    if version.provider_id is None and not version.files.exists():
        return f"{version.ref} has no files"
    return ""


def _permission_problem(actor, step: Step) -> str:
    if may_manage_slots(actor):
        return ""
    for version, role in ((step.target, "asked for"), (step.current, "served now")):
        if version is not None and version.model.owner_id != actor.pk:
            return (
                f"{version.ref} ({role}) belongs to {version.model.owner.get_username()}; "
                "only its owner or staff may switch it"
            )
    return ""


def plan_build(*, targets: dict[str, Target], actor, force: bool = False) -> list[Step]:
    """Validate every assignment; raise SlotErrors naming each bad slot's cause.

    1. The request names at least one slot; every slot exists.
    2. Each ref parses and resolves to a version the actor can see (404 otherwise).
    3. The version is deployable: available, and trusted when pickle-based.
    4. It fits the slot: task and signature contract; and it passes the slot's quality
       gate (modelmgr.deploy.gate), unless ``force`` (the step then lists what it
       overrides in ``overridden``).
    5. The actor may switch it (see the module docstring).
    """
    actor = as_actor(actor)
    if not isinstance(targets, dict) or not targets:
        raise SlotErrors('nothing to switch: send {"<slot>": "<name@version>", ...}', status=422)
    slots = {
        slot.name: slot
        for slot in Slot.objects.select_related("active_version__model__owner").filter(
            name__in=list(targets)
        )
    }
    causes: dict[str, tuple[int, str]] = {}
    steps: list[Step] = []
    for name, target in targets.items():
        slot = slots.get(name)
        if slot is None:
            causes[name] = (404, f"there is no slot named {name!r}")
            continue
        if target is not None and not isinstance(target, str | ModelVersion):
            causes[name] = (422, f"expected a 'name@version' string or null, got {target!r}")
            continue
        try:
            version = _resolve(actor, target)
        except ModelmgrError as exc:
            causes[name] = (exc.status, exc.detail)
            continue
        step = Step(slot=slot, current=slot.active_version, target=version)
        if version is not None and not step.unchanged:
            problem = _deployable_problem(version)
            if problem:
                causes[name] = (409, problem)
                continue
            misfit = version_fits_slot(version, slot)
            if misfit:
                causes[name] = (
                    409,
                    f"{version.ref} does not fit slot {name}: " + "; ".join(misfit),
                )
                continue
            failures = gate_failures(version, slot)
            if failures and not force:
                causes[name] = (
                    409,
                    f"{version.ref} fails slot {name}'s quality gate: "
                    + "; ".join(failures)
                    + " (force the switch to override)",
                )
                continue
            step.overridden = failures
        problem = _permission_problem(actor, step)
        if problem:
            causes[name] = (403, problem)
            continue
        steps.append(step)
    if causes:
        raise SlotErrors.from_causes("switch refused, nothing changed", causes)
    return steps
