"""Per-arm statistics of a slot: its primary, its canary and its shadow, side by side.

Recorded on the request path (a few additions under a lock); kept in the worker's memory
since the arm started serving that version (a new version in an arm starts from zero),
read by the web through GET /arms. Latency percentiles come from the last LATENCY_KEEP
successful runs of each arm. A shadow also counts how often its outputs agreed with the
primary's answer to the same request: ``matched`` when every output has the same shape
and is close within AGREE_RTOL / AGREE_ATOL, ``same_argmax`` when the first output picks
the same class per row (what a classifier's caller acts on).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from inference.router import CANARY, SHADOW, Route

LATENCY_KEEP = 4096
AGREE_RTOL, AGREE_ATOL = 1e-3, 1e-5
ARMS = ("primary", CANARY, SHADOW)


@dataclass
class ArmCounter:
    version_id: int
    ref: str
    requests: int = 0
    errors: int = 0
    skipped: int = 0  # shadow runs dropped because too many were already queued
    compared: int = 0
    matched: int = 0
    same_argmax: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_KEEP))

    def summary(self, *, samples: bool = False) -> dict:
        ms = np.asarray(self.latencies, dtype=np.float64)
        p50, p95, p99 = (
            (round(float(v), 4) for v in np.percentile(ms, [50, 95, 99]))
            if ms.size
            else (None, None, None)
        )
        return {
            "version_id": self.version_id,
            "ref": self.ref,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            # The web merges several workers' arms exactly from these (modelmgr.deploy.arms).
            **({"latencies_ms": [round(float(v), 4) for v in ms]} if samples else {}),
        }


class ArmStats:
    def __init__(self):
        self._lock = threading.Lock()
        self._arms: dict[tuple[str, str], ArmCounter] = {}

    def _counter(self, slot: str, arm: str, version_id: int, ref: str) -> ArmCounter:
        counter = self._arms.get((slot, arm))
        if counter is None or counter.version_id != version_id:
            counter = self._arms[(slot, arm)] = ArmCounter(version_id, ref)
        return counter

    def record(
        self, slot: str, arm: str, version_id: int, ref: str, latency_ms: float | None, ok: bool
    ) -> None:
        with self._lock:
            counter = self._counter(slot, arm, version_id, ref)
            counter.requests += 1
            if not ok:
                counter.errors += 1
            elif latency_ms is not None:
                counter.latencies.append(latency_ms)

    def skipped(self, slot: str, version_id: int, ref: str) -> None:
        with self._lock:
            self._counter(slot, SHADOW, version_id, ref).skipped += 1

    def agreement(
        self, slot: str, version_id: int, ref: str, *, matched: bool, same_argmax: bool
    ) -> None:
        with self._lock:
            counter = self._counter(slot, SHADOW, version_id, ref)
            counter.compared += 1
            counter.matched += matched
            counter.same_argmax += same_argmax

    def snapshot(self, table: dict[str, Route], *, samples: bool = False) -> dict[str, dict]:
        """slot -> {arm: figures} for every arm the routing table has now (an arm with
        no request yet shows zeros); the canary's share rides along. ``samples`` adds
        each arm's kept latencies (``latencies_ms``), for merging several workers'."""
        result: dict[str, dict] = {}
        with self._lock:
            for slot, route in sorted(table.items()):
                arms = {}
                for arm, entry in (("primary", route.entry), (CANARY, route.canary)):
                    if entry is not None:
                        arms[arm] = self._figures(slot, arm, entry.version_id, entry.ref, samples)
                if route.canary is not None:
                    arms[CANARY]["share"] = route.share
                if route.shadow is not None:
                    shadow = route.shadow
                    arms[SHADOW] = self._figures(
                        slot, SHADOW, shadow.version_id, shadow.ref, samples
                    )
                result[slot] = arms
        return result

    def _figures(self, slot: str, arm: str, version_id: int, ref: str, samples: bool) -> dict:
        counter = self._arms.get((slot, arm))
        if counter is None or counter.version_id != version_id:
            counter = ArmCounter(version_id, ref)
        figures = counter.summary(samples=samples)
        if arm == SHADOW:
            figures.update(
                skipped=counter.skipped,
                compared=counter.compared,
                matched=counter.matched,
                same_argmax=counter.same_argmax,
                agreement=round(counter.matched / counter.compared, 4)
                if counter.compared
                else None,
                argmax_agreement=round(counter.same_argmax / counter.compared, 4)
                if counter.compared
                else None,
            )
        return figures


def outputs_agree(primary: dict[str, np.ndarray], shadow: dict[str, np.ndarray]) -> tuple:
    """(matched, same_argmax) of a shadow's outputs against the primary's."""
    if not primary:
        return False, False
    matched = set(primary) == set(shadow) and all(
        np.shape(primary[name]) == np.shape(shadow[name])
        and np.allclose(
            np.asarray(primary[name], dtype=np.float64),
            np.asarray(shadow[name], dtype=np.float64),
            rtol=AGREE_RTOL,
            atol=AGREE_ATOL,
        )
        for name in primary
    )
    first = next(iter(primary))
    a, b = np.asarray(primary[first]), np.asarray(shadow.get(first, ()))
    same_argmax = (
        a.shape == b.shape
        and a.size > 0
        and a.dtype.kind in "fiub"
        and b.dtype.kind in "fiub"
        and bool(np.array_equal(np.argmax(a, axis=-1), np.argmax(b, axis=-1)))
    )
    return bool(matched), bool(same_argmax)


def route_arms(route: Route) -> dict:
    """A route's arms for the worker's /status (nothing for a slot without any)."""
    arms: dict = {}
    if route.canary is not None:
        arms["canary"] = {"version_id": route.canary.version_id, "ref": route.canary.ref}
        arms["canary_share"] = route.share
    if route.shadow is not None:
        arms["shadow"] = {"version_id": route.shadow.version_id, "ref": route.shadow.ref}
    return arms
