"""Does a version fit a slot? Task and signature contract, checked in the web process.

A contract is ``{"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}`` like
ModelVersion.signature. Names must be present, dtypes equal when both sides record one,
and fixed dims equal (rank too); a symbolic (str) or unknown (null) dim on either side
matches anything. The worker applies the same rules again before it loads (inference.
signature.contract_mismatches, the one implementation of these rules), so a version
refused here would be refused there too.
"""

from __future__ import annotations

from typing import Any

from inference.signature import contract_mismatches
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ModelVersion, Slot, Task

SIDES = ("inputs", "outputs")
# numpy's names, as inspection records them (plus bfloat16, which numpy lacks).
DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "str",
    }
)


class InvalidContract(ModelmgrError):
    status = 422


def effective_signature(version: ModelVersion) -> dict[str, list[dict]]:
    """The version's signature with gaps filled from ``metadata["inputs"]`` (as the worker).

    1. Inputs come from the signature, or from the metadata when it records none.
    2. An input without shape or dtype takes it from the metadata's input of the same
       name (or the same position when both lists have the same length).
    """
    signature = version.signature if isinstance(version.signature, dict) else {}
    metadata = version.metadata if isinstance(version.metadata, dict) else {}
    hints = [h for h in metadata.get("inputs") or [] if isinstance(h, dict) and h.get("name")]
    inputs = [dict(item) for item in signature.get("inputs") or [] if isinstance(item, dict)]
    if not inputs:
        inputs = [dict(h) for h in hints]
    for position, item in enumerate(inputs):
        hint = next((h for h in hints if h["name"] == item.get("name")), None)
        if hint is None and len(hints) == len(inputs):
            hint = hints[position]
        if hint is None:
            continue
        if item.get("shape") is None and hint.get("shape") is not None:
            item["shape"] = list(hint["shape"])
        if not item.get("dtype") and hint.get("dtype"):
            item["dtype"] = hint["dtype"]
    outputs = [dict(o) for o in signature.get("outputs") or [] if isinstance(o, dict)]
    return {"inputs": inputs, "outputs": outputs}


def version_fits_slot(version: ModelVersion, slot: Slot) -> list[str]:
    """Problems that keep ``version`` out of ``slot`` (empty: it fits).

    A slot of task 'other' takes any task; otherwise the model's task must match.
    """
    problems: list[str] = []
    task = version.model.task
    if slot.task != Task.OTHER and task != slot.task:
        problems.append(f"{version.ref} is a {task} model, slot {slot.name} serves {slot.task}")
    problems.extend(contract_mismatches(effective_signature(version), slot.contract))
    return problems


def _clean_dim(dim: Any, where: str) -> int | str | None:
    if dim is None or (isinstance(dim, str) and dim.strip()):
        return dim
    if isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0:
        return dim
    raise InvalidContract(
        f"{where}: a dim is a non-negative integer, a symbolic name or null, got {dim!r}"
    )


def clean_contract(contract: Any) -> dict[str, list[dict]]:
    """A well-formed contract, or InvalidContract (422) naming the bad part.

    ``{}`` (or null) means no contract. Each side is a list of
    ``{"name": str, "shape": [dims] | null, "dtype": str | null}`` with unique names.
    """
    if contract is None or contract == {}:
        return {}
    if not isinstance(contract, dict):
        raise InvalidContract(f"contract must be an object with inputs/outputs, got {contract!r}")
    unknown = sorted(set(contract) - set(SIDES))
    if unknown:
        raise InvalidContract(f"contract has unknown keys {unknown} (allowed: inputs, outputs)")
    cleaned: dict[str, list[dict]] = {}
    for side in SIDES:
        items = contract.get(side) or []
        if not isinstance(items, list):
            raise InvalidContract(f"contract.{side} must be a list")
        seen: set[str] = set()
        out = []
        for index, item in enumerate(items):
            where = f"contract.{side}[{index}]"
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("name"), str)
                or not item["name"].strip()
            ):
                raise InvalidContract(f"{where} needs a non-empty 'name'")
            extra = sorted(set(item) - {"name", "shape", "dtype"})
            if extra:
                raise InvalidContract(f"{where} has unknown keys {extra}")
            if item["name"] in seen:
                raise InvalidContract(f"{where}: {item['name']!r} appears twice")
            seen.add(item["name"])
            shape = item.get("shape")
            if shape is not None and not isinstance(shape, list):
                raise InvalidContract(f"{where}.shape must be a list of dims or null")
            dtype = item.get("dtype")
            if dtype is not None and dtype not in DTYPES:
                raise InvalidContract(
                    f"{where}.dtype {dtype!r} is not a dtype (one of: {', '.join(sorted(DTYPES))}"
                    " or null)"
                )
            out.append(
                {
                    "name": item["name"],
                    "shape": None if shape is None else [_clean_dim(d, where) for d in shape],
                    "dtype": dtype,
                }
            )
        if out:
            cleaned[side] = out
    return cleaned
