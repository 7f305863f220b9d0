"""How a candidate's signature differs from what a slot serves now, change by change.

Each change says whether it is **breaking** for a caller written against the old
signature:

- an input added, removed or renamed: breaking (callers do not send it, or send one
  the model refuses);
- an output removed or renamed: breaking (callers read it); an output added: not;
- a dtype changed: breaking;
- a rank changed, or a fixed dim changed to another number: breaking;
- an input dim that was fixed and is now symbolic/unknown accepts more: not breaking;
  an input dim that was open and is now fixed accepts less: breaking;
- an output dim that was fixed and is now symbolic: breaking is not certain, so it is
  reported as not breaking with a note; open -> fixed: not breaking.

A removed and an added tensor on the same side with the same shape and dtype (one of
each left unmatched) are reported as one rename.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Change:
    side: str  # "inputs" | "outputs"
    kind: str  # added | removed | renamed | shape | dtype
    name: str
    breaking: bool
    message: str
    old: Any = None
    new: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fixed(dim: Any) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool)


def _shape_change(side: str, name: str, old: list | None, new: list | None) -> Change | None:
    if old is None or new is None or old == new:
        return None
    if len(old) != len(new):
        return Change(
            side,
            "shape",
            name,
            True,
            f"{side[:-1]} {name!r}: rank {len(old)} -> {len(new)} (shape {old} -> {new})",
            old,
            new,
        )
    breaking, notes = False, []
    for axis, (a, b) in enumerate(zip(old, new, strict=True)):
        if _fixed(a) and _fixed(b):
            if a != b:
                breaking = True
                notes.append(f"dim {axis}: {a} -> {b}")
        elif _fixed(a):  # fixed -> open
            if side == "outputs":
                notes.append(f"dim {axis}: {a} -> {b!r} (may vary now)")
            else:
                notes.append(f"dim {axis}: {a} -> {b!r} (accepts more)")
        elif _fixed(b):  # open -> fixed
            if side == "inputs":
                breaking = True
                notes.append(f"dim {axis}: {a!r} -> {b} (accepts only {b} now)")
            else:
                notes.append(f"dim {axis}: {a!r} -> {b}")
    if not notes:
        return None  # only symbolic names changed
    return Change(
        side,
        "shape",
        name,
        breaking,
        f"{side[:-1]} {name!r}: shape {old} -> {new} ({'; '.join(notes)})",
        old,
        new,
    )


def signature_diff(old: dict, new: dict) -> list[Change]:
    """Changes from ``old`` to ``new`` (``{"inputs": [...], "outputs": [...]}``)."""
    changes: list[Change] = []
    for side in ("inputs", "outputs"):
        before = {t["name"]: t for t in old.get(side) or [] if isinstance(t, dict) and "name" in t}
        after = {t["name"]: t for t in new.get(side) or [] if isinstance(t, dict) and "name" in t}
        removed = [n for n in before if n not in after]
        added = [n for n in after if n not in before]
        for name in list(removed):
            twins = [
                n
                for n in added
                if after[n].get("dtype") == before[name].get("dtype")
                and after[n].get("shape") == before[name].get("shape")
            ]
            if len(twins) == 1 and len(removed) == len(added) == 1:
                changes.append(
                    Change(
                        side,
                        "renamed",
                        name,
                        True,
                        f"{side[:-1]} {name!r} renamed to {twins[0]!r}",
                        name,
                        twins[0],
                    )
                )
                removed.remove(name)
                added.remove(twins[0])
        for name in removed:
            changes.append(
                Change(
                    side, "removed", name, True, f"{side[:-1]} {name!r} removed", before[name], None
                )
            )
        for name in added:
            breaking = side == "inputs"
            changes.append(
                Change(
                    side,
                    "added",
                    name,
                    breaking,
                    f"{side[:-1]} {name!r} added"
                    + (" (callers do not send it)" if breaking else ""),
                    None,
                    after[name],
                )
            )
        for name in before.keys() & after.keys():
            a, b = before[name], after[name]
            if a.get("dtype") and b.get("dtype") and a["dtype"] != b["dtype"]:
                changes.append(
                    Change(
                        side,
                        "dtype",
                        name,
                        True,
                        f"{side[:-1]} {name!r}: dtype {a['dtype']} -> {b['dtype']}",
                        a["dtype"],
                        b["dtype"],
                    )
                )
            shape = _shape_change(side, name, a.get("shape"), b.get("shape"))
            if shape is not None:
                changes.append(shape)
    return changes
