"""The worker's Prometheus metrics: one registry, recording helpers, a GET /metrics app.

Any ASGI app of the worker (the private control app in inference.server, the public
serving listener) mounts the endpoint with one line::

    ("GET", "/metrics"): metrics_endpoint,

and records a request with ``request_record(slot, version_id, status, seconds)`` (for a
request that reached no version: ``request_record(slot_label(worker, slot), None, ...)``).
Only what is really recorded is exported:

- ``modelmgr_worker_requests_total{slot,version,outcome}``: outcome ``ok``, ``refused``
  (a 4xx: the client's mistake) or ``error`` (a 5xx: the model, the worker, not ready).
  ``version`` is empty when no version was reached (slot not served, being switched).
- ``modelmgr_worker_request_duration_seconds{slot}``: the worker's whole answer (read,
  decode, run, encode), every outcome; buckets from 100 us to 10 s.
- ``modelmgr_worker_switches_total{source,outcome}`` and
  ``modelmgr_worker_switch_duration_seconds{source}``: switches (``source`` ``switch``:
  a /switch; ``reconcile``: a restore or reconcile pass) from validation to swap;
  ``modelmgr_worker_swap_duration_seconds``: the routing-table replacement alone.
- At scrape time, from the watched Worker: ``modelmgr_worker_ready``,
  ``modelmgr_worker_models_loaded{state}``, ``modelmgr_worker_model_memory_bytes``
  per loaded version (measured growth across its load), the pool's budget and
  accounted bytes, and the process's measured memory (RSS; CUDA allocated/reserved on a
  GPU), besides the client library's ``process_*`` metrics.

Slot labels come from the routing table, never from the request path as such: a
request for a slot the worker does not know is counted under ``slot="_unknown"``, so
a client cannot grow the label set without bound.
"""

from __future__ import annotations

import hmac
import threading
import weakref
from bisect import bisect_left
from typing import TYPE_CHECKING

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.utils import floatToGoString

from inference.asgi import send_bytes, send_json
from inference.memory import memory_status

if TYPE_CHECKING:
    from inference.worker import Worker

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

# Sub-millisecond answers of tiny models up to multi-second ones on a loaded CPU.
LATENCY_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# A switch loads and warms up models: from a reused model (ms) to a large load (minutes).
SWITCH_BUCKETS_S = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SWAP_BUCKETS_S = (0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0)
UNKNOWN_SLOT = "_unknown"

SWITCHES = Counter(
    "modelmgr_worker_switches",
    "Switches the worker applied (source: switch or reconcile; outcome: ok or failed).",
    ["source", "outcome"],
    registry=REGISTRY,
)
SWITCH_DURATION = Histogram(
    "modelmgr_worker_switch_duration_seconds",
    "A switch in the worker, from validation to the swap (loads and warm-ups included).",
    ["source"],
    buckets=SWITCH_BUCKETS_S,
    registry=REGISTRY,
)
SWAP_DURATION = Histogram(
    "modelmgr_worker_swap_duration_seconds",
    "The routing-table replacement of a switch alone (what serving could notice).",
    buckets=SWAP_BUCKETS_S,
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "modelmgr_worker_batch_size",
    "Requests stacked into one model run by dynamic batching, per slot.",
    ["slot"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
BATCH_QUEUE = Histogram(
    "modelmgr_worker_batch_queue_seconds",
    "Time a request waited in a dynamic batching queue before its batch ran, per slot.",
    ["slot"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
    registry=REGISTRY,
)


def batch_record(slot: str, size: int, waits_s: list[float]) -> None:
    """One batch dispatched: its size, and how long each of its requests queued."""
    BATCH_SIZE.labels(slot).observe(size)
    queue = BATCH_QUEUE.labels(slot)
    for waited in waits_s:
        queue.observe(waited)


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    return "refused" if status < 500 else "error"


class RequestStats:
    """Request counts and latency histograms, exported at scrape time.

    On the hot path, so leaner than prometheus_client's Counter and Histogram (about a
    quarter of their cost per request): one lock, a bisect and a few additions.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, list] = {}  # slot -> [bucket counts..., +Inf count, sum]

    def record(self, slot: str, version_id: int | None, status: int, seconds: float) -> None:
        key = (slot, "" if version_id is None else str(version_id), outcome_of(status))
        bucket = bisect_left(LATENCY_BUCKETS_S, seconds)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            latency = self._latency.get(slot)
            if latency is None:
                latency = self._latency[slot] = [0] * (len(LATENCY_BUCKETS_S) + 1) + [0.0]
            latency[bucket] += 1
            latency[-1] += seconds

    def describe(self):
        return []

    def collect(self):
        with self._lock:
            counts = dict(self._counts)
            latency = {slot: list(values) for slot, values in self._latency.items()}
        requests = CounterMetricFamily(
            "modelmgr_worker_requests",
            "Inference requests by slot, version and outcome (ok, refused: 4xx, error: 5xx).",
            labels=["slot", "version", "outcome"],
        )
        for labels, count in sorted(counts.items()):
            requests.add_metric(list(labels), count)
        yield requests
        durations = HistogramMetricFamily(
            "modelmgr_worker_request_duration_seconds",
            "The worker's whole answer to an inference request, per slot.",
            labels=["slot"],
        )
        for slot, values in sorted(latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*LATENCY_BUCKETS_S, float("inf")], values[:-1], strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            durations.add_metric([slot], buckets, values[-1])
        yield durations


REQUEST_STATS = RequestStats()
REGISTRY.register(REQUEST_STATS)


def request_record(slot: str, version_id: int | None, status: int, seconds: float) -> None:
    """One answered inference request: ``status`` is the HTTP status it got."""
    REQUEST_STATS.record(slot, version_id, status, seconds)


def slot_label(worker: Worker, slot: str) -> str:
    """``slot`` when the worker serves it or knows why not, else UNKNOWN_SLOT."""
    if slot in worker.router.table or slot in worker.errors:
        return slot
    return UNKNOWN_SLOT


def switch_record(*, source: str, ok: bool, seconds: float, swap_seconds: float | None) -> None:
    SWITCHES.labels(source, "ok" if ok else "failed").inc()
    SWITCH_DURATION.labels(source).observe(seconds)
    if swap_seconds is not None:
        SWAP_DURATION.observe(swap_seconds)


class WorkerCollector:
    """Gauges read from the watched worker at scrape time (nothing to keep in step)."""

    def __init__(self):
        self._worker: weakref.ref | None = None

    def watch(self, worker: Worker) -> None:
        self._worker = weakref.ref(worker)

    def describe(self):
        return []  # the families depend on the worker; collected at scrape time only

    def collect(self):
        worker = self._worker() if self._worker is not None else None
        if worker is None:
            return
        yield GaugeMetricFamily(
            "modelmgr_worker_ready", "1 when the worker serves (restore done).", int(worker.ready)
        )
        entries = worker.pool.entries()
        by_state = GaugeMetricFamily(
            "modelmgr_worker_models_loaded", "Models in the pool by state.", labels=["state"]
        )
        states: dict[str, int] = {}
        for entry in entries:
            states[entry.state] = states.get(entry.state, 0) + 1
        for state, count in sorted(states.items()):
            by_state.add_metric([state], count)
        yield by_state
        per_model = GaugeMetricFamily(
            "modelmgr_worker_model_memory_bytes",
            "Measured growth of the process across each loaded version's load and warm-up.",
            labels=["version", "ref"],
        )
        for entry in entries:
            if entry.measured_bytes is not None:
                per_model.add_metric([str(entry.version_id), entry.ref], entry.measured_bytes)
        yield per_model
        memory = memory_status(worker.device, worker.pool.memory())
        for key, help_text in (
            ("measured_bytes", "Memory in use, measured: device used (GPU) or RSS (CPU)."),
            ("budget_bytes", "The pool's memory budget."),
            ("used_bytes", "The pool's accounting of what its models take (may be estimated)."),
            ("process_rss_bytes", "The worker process's resident set."),
            ("cuda_allocated_bytes", "CUDA caching allocator: allocated bytes."),
            ("cuda_reserved_bytes", "CUDA caching allocator: reserved bytes."),
        ):
            value = memory.get(key)
            if isinstance(value, int | float):
                yield GaugeMetricFamily(f"modelmgr_worker_memory_{key}", help_text, value)


WORKER_COLLECTOR = WorkerCollector()
REGISTRY.register(WORKER_COLLECTOR)


def metrics_watch(worker: Worker) -> None:
    """Export ``worker``'s pool and readiness gauges (the last worker watched wins)."""
    WORKER_COLLECTOR.watch(worker)


def metrics_authorized(headers) -> bool:
    """With MODELMGR_METRICS_TOKEN set, a scrape must send it as a bearer token."""
    token = settings.MODELMGR_METRICS_TOKEN
    if not token:
        return True
    for name, value in headers:
        if name == b"authorization":
            return hmac.compare_digest(value, f"Bearer {token}".encode())
    return False


async def metrics_endpoint(scope, receive, send) -> None:
    """GET /metrics: the Prometheus text format."""
    if not metrics_authorized(scope.get("headers") or []):
        return await send_json(
            send,
            401,
            {"detail": "metrics need the bearer token MODELMGR_METRICS_TOKEN"},
            [(b"www-authenticate", b"Bearer")],
        )
    body = generate_latest(REGISTRY)
    await send_bytes(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
