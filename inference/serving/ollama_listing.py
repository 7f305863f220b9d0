"""What the Ollama-compatible routes list: ``/api/tags`` (what can be used), ``/api/ps``
(what is loaded, with its keep-alive expiry) and ``/api/show``.

- /api/tags: the llm slots the token may use, then (tokens not limited to slots) every
  available language-model version its user can see, loaded or not (``name@version``):
  naming one loads it on demand (inference.serving.ondemand).
- /api/ps: the loaded language models, a slot's under the slot's name, others under
  their ``name@version``. ``expires_at`` is when keep-alive unloads it; a model that
  keep-alive does not unload (a slot serves it: until the slot changes; pinned; or
  ``keep_alive`` < 0) gets what Ollama itself answers for "never": now + ~292 years.
  ``kept_by`` (a modelmgr addition Ollama clients ignore) says which: ``slot``,
  ``pinned``, ``forever`` or ``keep_alive``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from inference.entry import DRAINING, READY, PoolEntry
from inference.keep_alive import expires_at_iso, expiry, is_language_model
from inference.runtimes.llm import CausalLM
from inference.serving.auth import Grant
from inference.serving.generation import llm_slots
from inference.serving.ondemand import usable_versions
from inference.worker import Worker
from modelmgr.exceptions import Forbidden
from modelmgr.models import ModelVersion


def details(model: CausalLM) -> dict:
    config = model.config
    return {
        "parent_model": "",
        "format": "safetensors",
        "family": str(config.get("model_type") or ""),
        "families": [str(config.get("model_type") or "")],
        "parameter_size": "",
        "quantization_level": model.dtype.upper(),
    }


def version_details(version: ModelVersion) -> dict:
    llm = (version.inspection or {}).get("llm") or {}
    family = version.family or str(llm.get("model_type") or "")
    return {
        "parent_model": "",
        "format": "safetensors",
        "family": family,
        "families": [family] if family else [],
        "parameter_size": version.parameter_size or "",
        "quantization_level": str(version.quantization or llm.get("dtype") or "").upper(),
    }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _slot_allowed(grant: Grant, slot: str) -> bool:
    try:
        grant.check_slot(slot)
    except Forbidden:
        return False
    return True


async def tags(worker: Worker, grant: Grant) -> list[dict]:
    models = []
    for slot, entry in sorted(llm_slots(worker).items()):
        if _slot_allowed(grant, slot):
            models.append(
                {
                    "name": slot,
                    "model": slot,
                    "modified_at": iso(entry.loaded_at),
                    "size": entry.memory_bytes,
                    "digest": entry.spec.content_hash,
                    "details": details(entry.model),
                }
            )
    versions = await asyncio.get_running_loop().run_in_executor(None, usable_versions, grant)
    for version in versions:
        models.append(
            {
                "name": version.ref,
                "model": version.ref,
                "modified_at": version.created_at.isoformat(),
                "size": version.size_bytes,
                "digest": version.content_hash,
                "details": version_details(version),
            }
        )
    return models


def loaded_language_models(worker: Worker) -> list[tuple[str, PoolEntry]]:
    """(name, entry) of every loaded language model: slots first, by name."""
    by_entry = {}
    for slot, route in sorted(worker.router.table.items()):
        by_entry.setdefault(id(route.entry), slot)
    rows = [
        (by_entry.get(id(e), e.ref), e)
        for e in worker.pool.entries()
        if e.state in (READY, DRAINING) and is_language_model(e.model)
    ]
    return sorted(rows, key=lambda row: (id(row[1]) not in by_entry, row[0]))


def ps(worker: Worker, grant: Grant) -> list[dict]:
    served = worker.router.served_ids()
    rows = []
    for name, entry in loaded_language_models(worker):
        is_slot = entry.version_id in served
        if is_slot and not _slot_allowed(grant, name):
            continue
        if not is_slot and grant.slots:
            continue
        model = entry.model
        when, kept_by = expiry(entry, served=served)
        rows.append(
            {
                "name": name,
                "model": name,
                "version": entry.ref,
                "size": entry.memory_bytes,
                "digest": entry.spec.content_hash,
                "details": details(model),
                "expires_at": expires_at_iso(when),
                "size_vram": entry.memory_bytes if model.device.startswith("cuda") else 0,
                "context_length": model.context_length,
                "kept_by": kept_by,
                "keep_alive_s": entry.keep_alive_s,
            }
        )
    return rows


def show_loaded(entry: PoolEntry, label: str) -> dict:
    model = entry.model
    template = getattr(model.tokenizer, "chat_template", None) or ""
    info = {f"{k}": v for k, v in model.config.items() if isinstance(v, (int, float, str))}
    return {
        "modelfile": f"# {entry.ref} {label}",
        "parameters": "",
        "template": template,
        "details": details(model),
        "model_info": {**info, "context_length": model.context_length},
        "capabilities": ["completion"] + (["chat"] if template else []),
        "modified_at": iso(entry.loaded_at),
    }
