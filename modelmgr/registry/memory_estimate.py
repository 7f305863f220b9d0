"""How much memory a version needs to serve, as the worker will count it at admission.

A thin adapter: a ModelVersion's stored facts (min VRAM, size, ``inspection["llm"]``,
metadata dtype) go to modelmgr.memory_need, the same estimate the worker's pool uses,
with the worker's settings (context, parallel generations, memory factor) unless the
caller asks about another context or parallelism (POST /api/v1/recommend).
"""

from __future__ import annotations

from django.conf import settings

from modelmgr.memory_need import GB, MB, MemoryNeed, shape_from_inspection, version_need
from modelmgr.models import ModelVersion

__all__ = ["GB", "MB", "estimate_memory"]


def estimate_memory(
    version: ModelVersion, *, context: int | None = None, parallel: int | None = None
) -> MemoryNeed:
    llm = (version.inspection or {}).get("llm") or {}
    metadata = version.metadata if isinstance(version.metadata, dict) else {}
    shape = (
        shape_from_inspection(llm, metadata, parameters=version.parameter_count) if llm else None
    )
    return version_need(
        min_vram_mb=version.min_vram_mb,
        size_bytes=version.size_bytes,
        memory_factor=settings.MODELMGR_WORKER_MEMORY_FACTOR,
        shape=shape,
        parallel=parallel or settings.MODELMGR_LLM_NUM_PARALLEL,
        context=settings.MODELMGR_LLM_CONTEXT if context is None else context,
    )
