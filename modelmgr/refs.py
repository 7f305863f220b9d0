"""The ``name@version`` reference syntax used everywhere; bare ``name`` = newest available."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelmgr.exceptions import ModelmgrError

_REF_RE = re.compile(
    r"^(?:(?P<owner>[\w.@+-]+)/)?(?P<name>[-a-zA-Z0-9_]+)(?:@(?P<version>[A-Za-z0-9][A-Za-z0-9._+-]*))?$"
)


class BadReference(ModelmgrError):
    status = 422


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str | None = None
    owner: str | None = None

    def __str__(self) -> str:
        base = f"{self.owner}/{self.name}" if self.owner else self.name
        return f"{base}@{self.version}" if self.version else base


def parse_ref(text: str) -> ModelRef:
    """Parse ``[owner/]name[@version]``."""
    match = _REF_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise BadReference(f"{text!r} is not a model reference (expected name@version or name)")
    return ModelRef(name=match["name"], version=match["version"], owner=match["owner"])
