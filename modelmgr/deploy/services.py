"""The deploy services in one import for the interfaces (API, pages, admin, commands)."""

from __future__ import annotations

from modelmgr.deploy.batching import slot_batching_set
from modelmgr.deploy.llm_limits import slot_llm_limits_set
from modelmgr.deploy.rollback import slot_rollback
from modelmgr.deploy.slots import slot_create, slot_delete, slot_update
from modelmgr.deploy.switch import SwitchResult, slots_switch
from modelmgr.deploy.watch import watch_start
from modelmgr.deploy.watch_switch import slots_switch_watched

__all__ = [
    "SwitchResult",
    "slot_batching_set",
    "slot_create",
    "slot_delete",
    "slot_llm_limits_set",
    "slot_rollback",
    "slot_update",
    "slots_switch",
    "slots_switch_watched",
    "watch_start",
]
