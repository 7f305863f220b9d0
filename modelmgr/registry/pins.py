"""Pins (ModelVersion.pinned): which versions the worker keeps loaded, never evicted.

Set through registry.services.version_update, like every other change to a version;
these are its rules. The worker converges to the pins on its next reconcile
(inference.pins): a change nudges it, after commit.
"""

from __future__ import annotations

from django.db import transaction

from modelmgr.exceptions import NotDeployable
from modelmgr.models import ModelVersion, VersionStatus


def version_pin_refusal(version: ModelVersion) -> str:
    """Why ``version`` (as it stands, unsaved changes included) may not be pinned, or ""."""
    if version.status != VersionStatus.AVAILABLE:
        return (
            f"{version.ref} cannot be pinned: its status is {version.status}; only "
            "available versions can be kept loaded"
        )
    if version.unsafe and not version.trusted:
        return (
            f"{version.ref} cannot be pinned: it is a pickled (unsafe) artifact that an "
            "administrator has not marked trusted"
        )
    return ""


def pin_after_update(version: ModelVersion, pinned: bool | None) -> bool:
    """The pin after this update: as asked (refused when the version may not be loaded),
    or cleared when the update's other changes (archive, trust revoked) make it
    undeployable."""
    wanted = version.pinned if pinned is None else bool(pinned)
    refusal = version_pin_refusal(version) if wanted else ""
    if refusal and pinned:
        raise NotDeployable(refusal)
    return wanted and not refusal


def worker_nudge_on_commit() -> None:
    """After the change commits, ask the worker to reconcile now (never fails)."""
    from modelmgr.deploy.workers import worker_nudge

    transaction.on_commit(worker_nudge)
