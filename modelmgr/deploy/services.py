"""The deploy services in one import for the interfaces (API, pages, admin, commands)."""

from __future__ import annotations

from modelmgr.deploy.batching import slot_batching_set
from modelmgr.deploy.rollback import slot_rollback
from modelmgr.deploy.slots import slot_create, slot_delete, slot_update
from modelmgr.deploy.switch import SwitchResult, slots_switch

__all__ = [
    "SwitchResult",
    "slot_batching_set",
    "slot_create",
    "slot_delete",
    "slot_rollback",
    "slot_update",
    "slots_switch",
]
