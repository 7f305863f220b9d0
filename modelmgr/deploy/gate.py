"""A slot's quality gate: thresholds on a version's metrics, and the production rule.

``Slot.quality_gate`` is ``{"<metric>": "<op> <number>"}``, e.g. ``{"val_accuracy":
">= 0.9", "train_loss": "< 0.5"}``; a metric is a ModelVersion field (the accuracies,
the loss) or a number in ``metadata["metrics"]``. A version without the metric fails
the threshold (nothing shows it passes). ``Slot.production`` admits only versions marked
``production_ready``. A switch to a version that fails either is refused (409) unless
forced; a forced switch is audited as ``slot.switch.forced`` with what it overrode.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from modelmgr.audit import audit_record
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ModelVersion, Slot

METRIC_FIELDS = ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss")
OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_RULE = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class InvalidGate(ModelmgrError):
    status = 422


@dataclass(frozen=True)
class GateCheck:
    metric: str
    rule: str
    value: float | None
    ok: bool

    @property
    def message(self) -> str:
        if self.value is None:
            return f"{self.metric} {self.rule} required, the version records no {self.metric}"
        verdict = "passes" if self.ok else "fails"
        return f"{self.metric} = {self.value:g} {verdict} {self.metric} {self.rule}"


def _parse(metric: str, rule: Any) -> tuple[str, float]:
    if isinstance(rule, int | float) and not isinstance(rule, bool):
        rule = f">= {rule}"  # a bare number is a minimum
    match = _RULE.match(rule) if isinstance(rule, str) else None
    if match is None:
        raise InvalidGate(
            f"quality_gate.{metric}: expected '<op> <number>' with op one of "
            f"{', '.join(OPERATORS)} (e.g. '>= 0.9'), got {rule!r}"
        )
    return match.group(1), float(match.group(2))


def clean_quality_gate(gate: Any) -> dict[str, str]:
    """A well-formed gate (``{metric: "<op> <number>"}``), or InvalidGate (422)."""
    if gate is None or gate == {}:
        return {}
    if not isinstance(gate, dict):
        raise InvalidGate(
            f'quality_gate must be an object like {{"val_accuracy": ">= 0.9"}}, got {gate!r}'
        )
    cleaned = {}
    for metric, rule in gate.items():
        if not isinstance(metric, str) or not _METRIC.match(metric):
            raise InvalidGate(f"quality_gate: {metric!r} is not a metric name")
        op, threshold = _parse(metric, rule)
        cleaned[metric] = f"{op} {threshold:g}"
    return cleaned


def metric_value(version: ModelVersion, metric: str) -> float | None:
    if metric in METRIC_FIELDS:
        value = getattr(version, metric)
    else:
        metadata = version.metadata if isinstance(version.metadata, dict) else {}
        metrics = metadata.get("metrics")
        value = metrics.get(metric) if isinstance(metrics, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def gate_checks(version: ModelVersion, slot: Slot) -> list[GateCheck]:
    checks = []
    for metric, rule in (slot.quality_gate or {}).items():
        op, threshold = _parse(metric, rule)
        value = metric_value(version, metric)
        ok = value is not None and OPERATORS[op](value, threshold)
        checks.append(GateCheck(metric, f"{op} {threshold:g}", value, ok))
    return checks


def gate_failures(version: ModelVersion, slot: Slot) -> list[str]:
    """Why ``slot``'s gate refuses ``version`` (empty: it passes)."""
    failures = [check.message for check in gate_checks(version, slot) if not check.ok]
    if slot.production and not version.production_ready:
        failures.append(
            f"slot {slot.name} is a production slot and {version.ref} is not production-ready"
        )
    return failures


def slot_gate_set(
    *,
    slot: Slot,
    quality_gate: Any = None,
    production: bool | None = None,
    actor,
    actor_label: str | None = None,
) -> Slot:
    """Change a slot's quality gate and/or production flag (None leaves it); audited.

    Staff (or the change_slot permission) only, like every other slot change.
    """
    from modelmgr.deploy.slots import _require

    _require(actor, "change_slot", "change slots")
    before = {"quality_gate": slot.quality_gate, "production": slot.production}
    if quality_gate is not None:
        slot.quality_gate = clean_quality_gate(quality_gate)
    if production is not None:
        slot.production = bool(production)
    with transaction.atomic():
        slot.save(update_fields=["quality_gate", "production", "updated_at"])
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="slot.gate",
            target_type="slot",
            target=slot.name,
            before=before,
            after={"quality_gate": slot.quality_gate, "production": slot.production},
        )
    return slot
