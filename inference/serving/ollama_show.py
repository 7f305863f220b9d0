"""``POST /api/show`` of a registry version no slot serves: from the loaded copy when
there is one, else from what ingest read of its folder (no load just to describe it)."""

from __future__ import annotations

import asyncio

from inference.entry import READY
from inference.serving.auth import Grant
from inference.serving.ollama_listing import show_loaded, version_details
from inference.serving.ondemand import NotALanguageModelVersion, version_of
from inference.worker import Worker, db_pass
from modelmgr.exceptions import Forbidden
from modelmgr.models import Task


def _show(worker: Worker, grant: Grant, name: str) -> dict:
    with db_pass():
        version = version_of(grant, name)
        if version.model.task != Task.LLM:
            raise NotALanguageModelVersion(
                f"{version.ref} is a {version.model.task} model, not a language model (llm)"
            )
        entry = worker.pool.get(version.pk)
        if entry is not None and entry.state == READY:
            return show_loaded(entry, "loaded on demand")
        llm = (version.inspection or {}).get("llm") or {}
        info = {k: v for k, v in llm.items() if isinstance(v, (int, float, str))}
        return {
            "modelfile": f"# {version.ref} (not loaded: a request loads it)",
            "parameters": "",
            "template": "",
            "details": version_details(version),
            "model_info": info,
            "capabilities": ["completion"] + (["chat"] if llm.get("chat_template") else []),
            "modified_at": version.created_at.isoformat(),
        }


async def show_version(worker: Worker, grant: Grant, name: str) -> dict:
    if grant.slots:
        raise Forbidden(
            f"token {grant.name!r} is limited to slot(s) {', '.join(grant.slots)}: "
            f"{name!r} is not one of them"
        )
    return await asyncio.get_running_loop().run_in_executor(None, _show, worker, grant, name)
