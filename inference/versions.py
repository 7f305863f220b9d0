"""Plain snapshots of the registry rows the worker needs, read once per load.

Load threads work on these frozen copies, never on ORM objects (no queries off the
control thread, no lazy loads racing a changing row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.conf import settings

from inference.signature import effective_signature
from modelmgr.exceptions import NotFound
from modelmgr.models import ModelVersion, Slot, VersionStatus
from modelmgr.storage import content_store, version_content_hash


@dataclass(frozen=True)
class FileSpec:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ProviderSpec:
    """Where a provided version runs (modelmgr.providers): the worker proxies to it."""

    name: str
    kind: str
    base_url: str
    api_key: str = field(repr=False)
    model: str  # the provider's own name for it


@dataclass(frozen=True)
class VersionSpec:
    id: int
    ref: str
    framework: str
    status: str
    unsafe: bool
    trusted: bool
    content_hash: str
    files: tuple[FileSpec, ...]
    primary: str
    size_bytes: int
    min_vram_mb: int | None
    declared_signature: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    # config.json of a Hugging Face folder (language models), read for the memory estimate
    llm_config: dict = field(default_factory=dict)
    # Language models' keep-alive (the version's, else MODELMGR_LLM_KEEP_ALIVE)
    keep_alive_s: float = 300.0
    provider: ProviderSpec | None = None

    def signature_for(self, contract: dict | None = None) -> dict:
        return effective_signature(
            self.declared_signature, metadata=self.metadata, contract=contract
        )

    def deployable_problem(self) -> str:
        """Why this version may not be loaded, or ""."""
        if self.status != VersionStatus.AVAILABLE:
            return f"{self.ref} is not deployable: its status is {self.status}"
        if self.unsafe and not self.trusted:
            return (
                f"{self.ref} is a pickled (unsafe) artifact; an administrator must mark "
                "it trusted before it can be loaded"
            )
        if not self.primary and self.provider is None:
            return f"{self.ref} has no files"
        return ""


def version_spec_get(*, version_id: int) -> VersionSpec:
    try:
        version = ModelVersion.objects.select_related("model", "provider").get(pk=version_id)
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"version {version_id} does not exist") from None
    files = tuple(
        FileSpec(path=f.path, sha256=f.sha256, size=f.size) for f in version.files.order_by("path")
    )
    primary = next((f.path for f in version.files.all() if f.is_primary), "")
    if not primary and len(files) == 1:
        primary = files[0].path
    content_hash = version.content_hash or version_content_hash((f.path, f.sha256) for f in files)
    return VersionSpec(
        id=version.pk,
        ref=version.ref,
        framework=version.framework or version.model.framework,
        status=version.status,
        unsafe=version.unsafe,
        trusted=version.trusted,
        content_hash=content_hash,
        files=files,
        primary=primary,
        size_bytes=version.size_bytes or sum(f.size for f in files),
        min_vram_mb=version.min_vram_mb,
        declared_signature=version.signature or {},
        metadata=version.metadata if isinstance(version.metadata, dict) else {},
        llm_config=_hf_config(version.framework or version.model.framework, files),
        keep_alive_s=(
            settings.MODELMGR_LLM_KEEP_ALIVE
            if version.keep_alive_s is None
            else version.keep_alive_s
        ),
        provider=_provider_spec(version),
    )


def provider_spec_get(*, version_id: int) -> ProviderSpec | None:
    """The provider of a version as the registry says now (a changed URL or key)."""
    version = ModelVersion.objects.select_related("provider").filter(pk=version_id).first()
    return _provider_spec(version) if version is not None else None


def _provider_spec(version: ModelVersion) -> ProviderSpec | None:
    provider = version.provider
    if provider is None:
        return None
    return ProviderSpec(
        name=provider.name,
        kind=provider.kind,
        base_url=provider.base_url,
        api_key=provider.api_key,
        model=version.provider_model,
    )


def _hf_config(framework: str, files: tuple[FileSpec, ...]) -> dict:
    """The folder's config.json (small; read from the store) for a Hugging Face version."""
    if framework != "huggingface":
        return {}
    config = next((f for f in files if f.path == "config.json"), None)
    if config is None or config.size > 1024 * 1024:
        return {}
    try:
        with content_store().open(config.sha256) as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError, NotFound):
        return {}
    return data if isinstance(data, dict) else {}


def slot_contracts(names: list[str] | None = None) -> dict[str, dict]:
    rows = Slot.objects.all() if names is None else Slot.objects.filter(name__in=names)
    return {name: contract or {} for name, contract in rows.values_list("name", "contract")}


def desired_state(group: str | None = None) -> dict[str, int | None]:
    """The database's desired state: slot name -> active version id (or None), plus
    ``slot#canary`` / ``slot#shadow`` -> version id for the arms of a served slot.

    With ``group`` (the worker's), slots restricted to another group are left out: a
    worker serves only the slots placed on it (Slot.worker_group)."""
    from inference.router import CANARY, SHADOW, arm_key

    state: dict[str, int | None] = {}
    rows = Slot.objects.values_list(
        "name", "active_version_id", "canary_version_id", "shadow_version_id", "worker_group"
    )
    for name, active, canary, shadow, placed in rows:
        if group is not None and placed and placed != group:
            continue
        state[name] = active
        if active is not None and canary is not None:
            state[arm_key(name, CANARY)] = canary
        if active is not None and shadow is not None:
            state[arm_key(name, SHADOW)] = shadow
    return state


def desired_shares() -> dict[str, float]:
    """slot -> its canary's share, for the served slots with a canary."""
    rows = Slot.objects.filter(active_version__isnull=False, canary_version__isnull=False)
    return dict(rows.values_list("name", "canary_share"))


def desired_pins() -> dict[int, str]:
    """The pins the database wants loaded: version id -> ref, for every pinned version
    that may be loaded (available; if unsafe, trusted). A pinned version that stopped
    being deployable (in error after a failed verify, trust revoked) is left out, so
    the worker unpins it."""
    rows = (
        ModelVersion.objects.deployable()
        .filter(pinned=True)
        .values_list("pk", "model__name", "version")
    )
    return {pk: f"{name}@{version}" for pk, name, version in rows}


def desired_batching() -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """Batching slots: name -> (max_batch_size, max_queue_delay_us, preferred sizes)."""
    rows = Slot.objects.filter(max_batch_size__gt=1).values_list(
        "name", "max_batch_size", "max_queue_delay_us", "preferred_batch_sizes"
    )
    return {
        name: (size, delay, tuple(int(p) for p in preferred or []))
        for name, size, delay, preferred in rows
    }


def desired_llm_limits() -> dict[str, tuple[int, int | None]]:
    """Slots with their own generation limits: name -> (num_parallel, max_queue); 0 /
    None follow MODELMGR_LLM_NUM_PARALLEL / MODELMGR_LLM_MAX_QUEUE."""
    rows = (
        Slot.objects.filter(llm_num_parallel__gt=0)
        | Slot.objects.filter(llm_max_queue__isnull=False)
    ).values_list("name", "llm_num_parallel", "llm_max_queue")
    return {name: (parallel, queue) for name, parallel, queue in rows}
