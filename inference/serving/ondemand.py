"""Ollama's on-demand loading: a request may name a registry version no slot serves.

``model`` on /api/generate, /api/chat and /api/show is resolved in this order:

1. a slot, or the ``name@version`` a slot serves: that slot (as before);
2. a registry version the token's user can see: ``name@version``, or ``name`` for its
   newest available version (Ollama's ``name:tag`` is read as ``name@tag``, and
   ``name:latest`` as ``name``). It must be a language model. It is loaded into the
   worker's cache if it is not there yet, under the same memory admission as every
   load (507 "needs X MB, Y MB free"), and stays for its keep-alive
   (inference.keep_alive).

A token limited to some slots (ApiToken.slots) may use only those slots: naming a
registry version is refused with 403 saying so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from inference.entry import PoolEntry
from inference.keep_alive import is_language_model
from inference.serving.auth import Grant
from inference.serving.generation import llm_slots
from inference.worker import Worker, db_pass
from modelmgr.exceptions import Forbidden, ModelmgrError, NotFound, WorkerUnavailable
from modelmgr.models import ModelVersion, Task


class NotALanguageModelVersion(ModelmgrError):
    status = 400


@dataclass
class Target:
    """What a request's ``model`` names: a slot, or a held loaded version (no slot)."""

    slot: str = ""
    entry: PoolEntry | None = None  # acquired: the caller releases it (LlmSession does)


def ollama_ref(name: str) -> str:
    """Ollama's ``name:tag`` as modelmgr's ``name@version`` (``latest``: the newest)."""
    if "@" in name or ":" not in name:
        return name
    base, _, tag = name.rpartition(":")
    return base if tag == "latest" else f"{base}@{tag}"


def served_slot(worker: Worker, name: str) -> str:
    """The slot ``name`` names (a slot, or the ref a slot serves), or ""."""
    table = worker.router.table
    ref = ollama_ref(name)  # a client may say "chat:latest" for the slot chat
    for candidate in (name, ref):
        if candidate in table:
            return candidate
    for slot, route in sorted(table.items()):
        if route.entry.ref in (name, ref):
            return slot
    return ""


def _user(grant: Grant):
    user = get_user_model().objects.filter(pk=grant.user_id, is_active=True).first()
    if user is None:
        raise Forbidden(f"token {grant.name!r} belongs to no active user")
    return user


def version_of(grant: Grant, name: str) -> ModelVersion:
    """The registry version ``name`` names, for the token's user (thread, ORM)."""
    from modelmgr.refs import BadReference
    from modelmgr.registry.selectors import version_resolve

    try:
        return version_resolve(user=_user(grant), ref=ollama_ref(name))
    except BadReference:
        raise NotFound(f"model {name!r} is neither a slot nor a registry version") from None
    except NotFound as exc:  # say what was looked for besides the registry
        raise NotFound(f"model {name!r} is not served here: no slot, and {exc}") from None


def _load_held(worker: Worker, grant: Grant, name: str) -> PoolEntry:
    """Resolve, load if needed (control lock), and acquire before anyone can unload it."""
    with db_pass():
        version = version_of(grant, name)
        if version.model.task != Task.LLM:
            raise NotALanguageModelVersion(
                f"{version.ref} is a {version.model.task} model, not a language model (llm)"
            )
        version_id = version.pk
        ref = version.ref
    for _ in range(3):
        with worker.control_lock:
            entry = worker.load_entry(version_id=version_id, pin=False)
            if worker.pool.try_acquire(entry):
                if not is_language_model(entry.model):
                    worker.pool.release(entry)
                    raise NotALanguageModelVersion(f"{ref} is not a language model")
                return entry
    raise WorkerUnavailable(f"{ref} was being unloaded; retry")


async def resolve_target(worker: Worker, grant: Grant, name: str) -> Target:
    """The slot or the held on-demand version ``name`` names (see the module docstring)."""
    slot = served_slot(worker, name)
    if slot:
        grant.check_slot(slot)
        return Target(slot=slot)
    if grant.user_id is None:  # the private port (the web's playground relay): slots only
        raise NotFound(f"model {name!r} is not served here: no slot serves it")
    if grant.slots:
        raise Forbidden(
            f"token {grant.name!r} is limited to slot(s) {', '.join(grant.slots)}: it may "
            f"not load registry versions on demand ({name!r} is not one of its slots)"
        )
    if not worker.ready:
        raise WorkerUnavailable(worker.not_ready_detail)
    loop = asyncio.get_running_loop()
    entry = await loop.run_in_executor(None, _load_held, worker, grant, name)
    return Target(entry=entry)


def release_target(worker: Worker, target: Target) -> None:
    if target.entry is not None:
        worker.pool.release(target.entry)


def usable_versions(grant: Grant) -> list[ModelVersion]:
    """Available language-model versions the token may load on demand (thread, ORM)."""
    if grant.slots:
        return []
    with db_pass():
        return list(
            ModelVersion.objects.deployable()
            .visible_to(_user(grant))
            .filter(model__task=Task.LLM)
            .select_related("model")
            .order_by("model__name", "-created_at", "-id")
        )


def served_refs(worker: Worker) -> set[str]:
    return {entry.ref for entry in llm_slots(worker).values()}
