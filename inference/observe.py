"""Signatures seen at warm-up, for formats whose files do not record them.

TorchScript keeps argument names but no shapes or dtypes, so its versions showed shape
`?` and dtype `None` although every predict knows them. After a version's warm-up the
worker runs it once more on a probe with batch 2 and records what it saw:

1. Inputs: the shapes and dtypes it was warmed up with (from metadata.inputs or the
   slot's contract), the batch dim kept symbolic.
2. Outputs: the shapes and dtypes it answered, a leading dim that followed the probe's
   batch written as the inputs' batch symbol.
3. Only gaps are filled (what inspection read stays), on the control thread, with a
   `version.signature` audit row.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from django.db import transaction

from inference.signature import np_dtype
from modelmgr.audit import audit_record
from modelmgr.models import ModelVersion

log = logging.getLogger("inference")

PROBE_BATCH = 2


def signature_complete(signature: dict | None) -> bool:
    """Every input and at least one output has a shape and a dtype."""
    signature = signature or {}
    outputs = signature.get("outputs") or []
    items = [*(signature.get("inputs") or []), *outputs]
    return bool(outputs) and all(
        isinstance(item, dict) and item.get("shape") is not None and item.get("dtype")
        for item in items
    )


def _batch_symbol(inputs: list[dict]) -> str | None:
    """The symbol every input's first dim shares ("batch"), or None when there is none."""
    firsts = {(item.get("shape") or [None])[0] for item in inputs}
    if len(firsts) == 1:
        (first,) = firsts
        if isinstance(first, str):
            return first
    return None


def _probe(signature: dict, batch: int) -> dict[str, np.ndarray] | None:
    arrays = {}
    for item in signature.get("inputs") or []:
        dtype = np_dtype(item.get("dtype"))
        shape = item.get("shape")
        if dtype is None or shape is None:
            return None
        dims = [
            d if isinstance(d, int) and d >= 0 else (batch if i == 0 else 1)
            for i, d in enumerate(shape)
        ]
        arrays[item["name"]] = np.zeros(dims, dtype=dtype)
    return arrays or None


def observe_signature(model: Any, declared: dict | None) -> dict | None:
    """What ``model`` takes and answers, when ``declared`` (the stored signature) lacks
    it; None when there is nothing to add or nothing to run it on."""
    if signature_complete(declared):
        return None
    effective = model.signature or {}
    symbol = _batch_symbol(effective.get("inputs") or [])
    probe = _probe(effective, PROBE_BATCH if symbol else 1)
    if probe is None:
        return None
    try:
        outputs = model.infer(probe)
    except Exception as exc:  # an odd model is not a failed load: just nothing to record
        log.info("no signature observed: the probe failed (%s)", exc)
        return None
    inputs = [
        {
            "name": item["name"],
            "shape": list(item["shape"]),
            "dtype": probe[item["name"]].dtype.name,
        }
        for item in effective.get("inputs") or []
    ]
    observed_outputs = []
    for name, array in outputs.items():
        array = np.asarray(array)
        shape: list[int | str] = list(array.shape)
        if symbol and shape and shape[0] == PROBE_BATCH:
            shape[0] = symbol
        observed_outputs.append({"name": name, "shape": shape, "dtype": array.dtype.name})
    return {"inputs": inputs, "outputs": observed_outputs}


def _fill(stored: list, observed: list) -> list:
    """Stored items with their missing shape/dtype taken from the observed item of the
    same name (or position); observed items alone when nothing was stored."""
    stored = [dict(item) for item in stored or [] if isinstance(item, dict)]
    if not stored:
        return [dict(item) for item in observed]
    for position, item in enumerate(stored):
        seen = next((o for o in observed if o["name"] == item.get("name")), None)
        if seen is None and len(observed) == len(stored):
            seen = observed[position]
        if seen is None:
            continue
        if item.get("shape") is None:
            item["shape"] = seen["shape"]
        if not item.get("dtype"):
            item["dtype"] = seen["dtype"]
    return stored


def signature_record(*, version_id: int, observed: dict) -> bool:
    """Fill the version's stored signature from an observation; True when it changed."""
    with transaction.atomic():
        version = (
            ModelVersion.objects.select_for_update()
            .select_related("model")
            .filter(pk=version_id)
            .first()
        )
        if version is None:
            return False
        before = version.signature if isinstance(version.signature, dict) else {}
        after = {
            **before,
            "inputs": _fill(before.get("inputs"), observed["inputs"]),
            "outputs": _fill(before.get("outputs"), observed["outputs"]),
        }
        if after == before:
            return False
        version.signature = after
        version.save(update_fields=["signature"])
        audit_record(
            actor=None,
            actor_label="worker (seen at warm-up)",
            action="version.signature",
            target_type="version",
            target=version.ref,
            before={"inputs": before.get("inputs"), "outputs": before.get("outputs")},
            after={"inputs": after["inputs"], "outputs": after["outputs"]},
        )
    log.info("recorded the signature %s showed at warm-up", version.ref)
    return True


def signatures_record(entries) -> int:
    """Persist the observations of freshly loaded pool entries (control thread)."""
    recorded = 0
    for entry in entries:
        observed = getattr(entry, "observed_signature", None)
        if observed is None or entry.signature_recorded:
            continue
        entry.signature_recorded = True
        recorded += signature_record(version_id=entry.version_id, observed=observed)
    return recorded
