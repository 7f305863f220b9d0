"""The worker's drift monitor: summaries taken off the request path, reports on demand.

The serving path calls ``observe()`` once per answered tensor request: it puts references
to the request's arrays on a queue and returns (no copy, no numpy work). A daemon thread
drains the queue, reduces the arrays to features (inference.drift.features) and feeds the
tracker of that slot version (inference.drift.tracker). Beyond MODELMGR_DRIFT_MAX_PER_S
requests a second, or when the queue is full (a burst the thread cannot keep up with),
requests are skipped and counted, never waited for: the thread's CPU stays bounded.

Trackers are per (slot, version): a switch starts a new reference for the new version.
At most VERSIONS_PER_SLOT are kept per slot (a canary and the active one; the least
recently seen goes first). Language-model slots are not watched (their requests do not
go through the tensor runner).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
from django.conf import settings

from inference.drift.features import request_features
from inference.drift.tracker import MAX_ROWS, SEVERITY, Thresholds, VersionTracker

log = logging.getLogger("inference")

QUEUE_LIMIT = 1024
VERSIONS_PER_SLOT = 3
EVALUATE_EVERY_S = 0.25  # the status shown on /status and sent as events, at most this stale
HISTOGRAMS = 4
BATCH_PAUSE_S = 0.05  # how long the thread lets requests gather after the first


def stacked_features(requests: list[tuple[dict, dict]], *, cap: int) -> dict:
    """The features of several requests' rows at once (one concatenation per tensor);
    requests whose tensors do not stack (other trailing shapes) are reduced one by one."""
    if len(requests) == 1:
        return request_features(*requests[0], cap=cap)
    try:
        stacked = [
            {
                name: np.concatenate([np.atleast_1d(np.asarray(r[side][name])) for r in requests])
                for name in requests[0][side]
            }
            for side in (0, 1)
        ]
        return request_features(stacked[0], stacked[1], cap=cap)
    except (ValueError, KeyError):
        merged: dict = {}
        for inputs, outputs in requests:
            for key, values in request_features(inputs, outputs, cap=cap).items():
                merged.setdefault(key, []).append(values)
        return {key: np.concatenate(parts) for key, parts in merged.items()}


def reference_requests_for(slot: str, overrides: dict[str, int]) -> int:
    """N of the slot: a reset's override, MODELMGR_DRIFT_REFERENCE_SLOTS, or the default."""
    if slot in overrides:
        return overrides[slot]
    for item in settings.MODELMGR_DRIFT_REFERENCE_SLOTS:
        name, _, value = item.partition("=")
        if name.strip() == slot and value.strip().isdigit():
            return int(value)
    return settings.MODELMGR_DRIFT_REFERENCE


def thresholds_from_settings() -> Thresholds:
    return Thresholds(
        psi_warning=settings.MODELMGR_DRIFT_PSI_WARNING,
        psi_drift=settings.MODELMGR_DRIFT_PSI_DRIFT,
        ks_p=settings.MODELMGR_DRIFT_KS_P,
        min_rows=settings.MODELMGR_DRIFT_MIN_ROWS,
    )


class DriftMonitor:
    def __init__(self, *, enabled: bool | None = None):
        self.enabled = settings.MODELMGR_DRIFT if enabled is None else enabled
        self.cap = settings.MODELMGR_DRIFT_MAX_FEATURES
        self.thresholds = thresholds_from_settings()
        self.max_per_s = settings.MODELMGR_DRIFT_MAX_PER_S
        self._second, self._this_second = 0, 0
        self.clock = time.monotonic
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.trackers: dict[tuple[str, int], VersionTracker] = {}
        self.last_seen: dict[tuple[str, int], float] = {}
        self.overrides: dict[str, int] = {}  # slot -> reference requests set by a reset
        self.skipped = 0
        self.summarised = 0
        # slot -> {"version_id", "status", "moved"} of the newest evaluation: worker status
        self.statuses: dict[str, dict] = {}
        self.listeners: list[Callable[[str, dict, dict | None], None]] = []
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._dirty = False

    # --- the request path ----------------------------------------------------------------
    def observe(self, slot: str, version_id: int, inputs: dict, outputs: dict) -> None:
        """Queue one answered request for summary; O(1), never blocks."""
        if not self.enabled:
            return
        if self._thread is None:
            self._start()
        # A CPU budget for the drift thread: at most max_per_s requests a second are
        # summarised (a uniform enough sample under heavy traffic), and none when it lags.
        second = int(self.clock())
        if second != self._second:
            self._second, self._this_second = second, 0
        if self._this_second >= self.max_per_s or self.queue.qsize() >= QUEUE_LIMIT:
            self.skipped += 1
            return
        self._this_second += 1
        self.queue.put((slot, version_id, inputs, outputs))

    # --- the drift thread ----------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="drift", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        evaluated = 0.0
        while True:
            try:
                items = [self.queue.get(timeout=EVALUATE_EVERY_S)]
            except queue.Empty:
                items = []
            if items:
                # Let a batch gather: numpy's per-call cost is paid once per batch, and
                # the thread wakes (and takes the GIL from serving) a few times a second.
                time.sleep(BATCH_PAUSE_S)
                while len(items) < QUEUE_LIMIT:
                    try:
                        items.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    self.summarise_many(items)
                except Exception:  # noqa: BLE001 - odd requests must not stop the watch
                    log.exception("drift: could not summarise %d requests", len(items))
            now = time.monotonic()
            if self._dirty and (not items or now - evaluated >= EVALUATE_EVERY_S):
                evaluated = now
                self.refresh_statuses()

    def summarise(self, slot: str, version_id: int, inputs: dict, outputs: dict) -> None:
        """One request into its version's tracker (tests call it)."""
        self.summarise_many([(slot, version_id, inputs, outputs)])

    def summarise_many(self, items: list[tuple]) -> None:
        """Queued requests into their versions' trackers, in order: per slot version, the
        requests the reference still needs first, then the rest, each part stacked into
        one array per tensor (the thread's one step)."""
        groups: dict[tuple[str, int], list[tuple[dict, dict]]] = {}
        for slot, version_id, inputs, outputs in items:
            groups.setdefault((slot, version_id), []).append((inputs, outputs))
        for (slot, version_id), requests in groups.items():
            with self.lock:
                missing = self._tracker(slot, version_id).reference_missing
            parts = [requests[:missing], requests[missing:]] if missing else [requests]
            for part in parts:
                if not part:
                    continue
                features = stacked_features(part, cap=self.cap)
                with self.lock:
                    self._tracker(slot, version_id).add(features, requests=len(part))
                    self.summarised += len(part)
                    self._dirty = True

    def _tracker(self, slot: str, version_id: int) -> VersionTracker:
        key = (slot, version_id)
        self.last_seen[key] = time.monotonic()
        tracker = self.trackers.get(key)
        if tracker is None:
            tracker = self.trackers[key] = VersionTracker(
                slot, version_id, reference_requests=reference_requests_for(slot, self.overrides)
            )
            same_slot = sorted((k for k in self.trackers if k[0] == slot), key=self.last_seen.get)
            for old in same_slot[:-VERSIONS_PER_SLOT]:
                del self.trackers[old]
                self.last_seen.pop(old, None)
        return tracker

    def refresh_statuses(self) -> None:
        """Evaluate every slot and tell listeners about statuses that changed."""
        with self.lock:
            self._dirty = False
            newest: dict[str, VersionTracker] = {}
            for (slot, _), tracker in self.trackers.items():
                if (
                    slot not in newest
                    or self.last_seen[(slot, tracker.version_id)]
                    > (self.last_seen[(slot, newest[slot].version_id)])
                ):
                    newest[slot] = tracker
            statuses = {}
            for slot, tracker in sorted(newest.items()):
                report = tracker.evaluate(self.thresholds)
                statuses[slot] = {
                    "version_id": tracker.version_id,
                    "status": report["status"],
                    "moved": report["moved"][:5],
                }
            previous, self.statuses = self.statuses, statuses
        for slot, status in statuses.items():
            before = previous.get(slot)
            if before is None or before["status"] != status["status"]:
                for listener in self.listeners:
                    listener(slot, status, before)

    # --- reports and control ---------------------------------------------------------------
    def report(self, slot: str, *, serving_version: int | None) -> dict:
        """The slot's drift: the served version's tracker first, then the others kept."""
        with self.lock:
            trackers = sorted(
                (t for (s, _), t in self.trackers.items() if s == slot),
                key=lambda t: (t.version_id != serving_version, -t.started_at),
            )
            versions = [t.evaluate(self.thresholds, histograms=HISTOGRAMS) for t in trackers]
        primary = versions[0] if versions else None
        return {
            "slot": slot,
            "enabled": self.enabled,
            "version_id": serving_version,
            "status": primary["status"] if primary else "no data",
            "moved": primary["moved"] if primary else [],
            "thresholds": self.thresholds.__dict__,
            "reference_requests": reference_requests_for(slot, self.overrides),
            "versions": versions,
            "skipped_requests": self.skipped,
        }

    def reference_set(self, slot: str, version_id: int, inputs: dict, outputs: dict) -> dict:
        """Replace the version's reference with an uploaded sample (its rows at once)."""
        features = request_features(inputs, outputs, cap=self.cap)
        with self.lock:
            key = (slot, version_id)
            self.trackers.pop(key, None)
            tracker = self._tracker(slot, version_id)
            tracker.fit(
                {k: v[np.isfinite(v)][:MAX_ROWS] for k, v in features.items()}, source="sample"
            )
            self._dirty = True
        self.refresh_statuses()
        return tracker.evaluate(self.thresholds)

    def reset(self, slot: str, *, reference_requests: int | None = None) -> None:
        """Forget the slot's references and windows; the next requests learn anew."""
        with self.lock:
            if reference_requests is not None:
                self.overrides[slot] = reference_requests
            for key in [k for k in self.trackers if k[0] == slot]:
                del self.trackers[key]
                self.last_seen.pop(key, None)
            self._dirty = True
        self.refresh_statuses()


def status_severity(status: str) -> int:
    return SEVERITY.get(status, 0)
