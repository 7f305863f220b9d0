"""What a switch would do to the worker's memory, without doing it (the fit preview).

The same rules as ``ModelPool.reserve``, simulated on a snapshot: each version not
loaded yet needs its estimate; when it does not fit in what is free, the least
recently used model that no slot serves, nobody pinned and the switch does not need
is evicted first, then the next. Nothing is loaded, unloaded or reserved.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from functools import cache
from importlib import metadata

from inference.device import MB
from inference.entry import DRAINING, READY
from inference.pool import ModelPool
from inference.versions import VersionSpec


def size_text(nbytes: float) -> str:
    """MB, or KB for what is under one (tiny models read 0.0 MB otherwise)."""
    return f"{nbytes / MB:.1f} MB" if nbytes >= MB else f"{nbytes / 1024:.1f} KB"


def iso_time(ts: float | None) -> str | None:
    return None if not ts else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def fit_preview(pool: ModelPool, specs: list[VersionSpec]) -> dict:
    """``{"memory", "versions": [...], "evictions": [...], "fits", "free_after_bytes"}``.

    1. Free memory now, plus what models already draining will give back.
    2. Versions already loaded (ready or draining) are reused: they need nothing.
    3. For each other version, in the order given: evict least recently used idle
       cached models until its estimate fits; a version that still does not fit marks
       the preview ``fits: false`` with the reason.
    """
    reading, entries, served = pool.plan_view()
    wanted = {spec.id for spec in specs}
    loaded = {e.version_id for e in entries if e.state in (READY, DRAINING)}
    free = reading.free_bytes + sum(e.memory_bytes for e in entries if e.state == DRAINING)
    cached = sorted(
        (
            e
            for e in entries
            if e.state == READY
            and not e.pinned
            and e.version_id not in served
            and e.version_id not in wanted
        ),
        key=lambda e: e.last_used,
    )
    versions, evictions, fits = [], [], True
    for spec in specs:
        if spec.id in loaded:
            versions.append(
                {
                    "version_id": spec.id,
                    "ref": spec.ref,
                    "needed_bytes": 0,
                    "loaded": True,
                    "fits": True,
                    "detail": f"{spec.ref} is loaded already",
                }
            )
            continue
        needed = pool.estimate(spec)
        while needed > free and cached:
            victim = cached.pop(0)
            free += victim.memory_bytes
            evictions.append(
                {
                    "version_id": victim.version_id,
                    "ref": victim.ref,
                    "memory_bytes": victim.memory_bytes,
                    "last_used": iso_time(victim.last_used),
                    "for_ref": spec.ref,
                }
            )
        ok = needed <= free
        if ok:
            free -= needed
            detail = f"{spec.ref} needs {size_text(needed)}"
        else:
            fits = False
            detail = (
                f"{spec.ref} needs {size_text(needed)}, only {size_text(free)} would be "
                f"free of {size_text(reading.budget_bytes)} budget even after evicting "
                "every cached model no slot serves"
            )
        versions.append(
            {
                "version_id": spec.id,
                "ref": spec.ref,
                "needed_bytes": needed,
                "loaded": False,
                "fits": ok,
                "detail": detail,
            }
        )
    return {
        "memory": reading.as_dict(),
        "versions": versions,
        "evictions": evictions,
        "fits": fits,
        "free_after_bytes": free,
    }


@cache
def environment() -> dict:
    """The worker's Python and installed distributions (for dependency checks)."""
    packages = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    return {
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": dict(sorted(packages.items())),
    }
