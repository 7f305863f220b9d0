"""Data drift's cost (inference.drift), in-process, no HTTP.

- ``observe_us``: what the serving path pays per request (the queue put in
  DriftMonitor.observe; the target is that it adds nothing noticeable: well under 10 us);
  ``observe_skip_us`` for a request over MODELMGR_DRIFT_MAX_PER_S (skipped).
- ``summarise_us_*``: the drift thread's work per request (features + reference or ring),
  for a [1, 4] vector and a [1, 3, 64, 64] image, one request at a time and in batches
  of 50 (what the thread does under traffic: it drains the queue every 50 ms); it runs
  beside serving, not in it.
- ``report_ms``: one GET /drift/{slot} evaluation (PSI + KS over every feature, 4
  histograms) with the reference and window full (500 requests each).
Usage: .venv/bin/python benchmarks/drift.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelmgr.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from inference.drift.monitor import DriftMonitor  # noqa: E402


def per_call_us(call, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vector = {"x": rng.normal(size=(1, 4)).astype(np.float32)}
    image = {"images": rng.normal(size=(1, 3, 64, 64)).astype(np.float32)}
    scores = {"y": rng.normal(size=(1, 2)).astype(np.float32)}

    monitor = DriftMonitor(enabled=True)
    monitor._thread = object()  # measure the put alone: nothing drains
    monitor.max_per_s = 10**9
    observe = []
    for _ in range(5):
        while monitor.queue.qsize():
            monitor.queue.get()
        observe.append(per_call_us(lambda: monitor.observe("s", 1, vector, scores), 1000))

    results = {"observe_us": round(statistics.median(observe), 3)}
    monitor.max_per_s = 0  # over the budget: the skip path
    skip = per_call_us(lambda: monitor.observe("s", 1, vector, scores), 5000)
    results["observe_skip_us"] = round(skip, 3)
    for name, inputs in (("vector", vector), ("image", image)):
        worker = DriftMonitor(enabled=True)

        def summarise(worker=worker, inputs=inputs):
            worker.summarise("s", 1, inputs, scores)

        runs = [per_call_us(summarise, args.requests // 10) for _ in range(5)]
        results[f"summarise_us_{name}"] = round(statistics.median(runs), 1)
        # What the thread does under traffic: 50 queued requests at a time.
        batch = [("s", 1, inputs, scores)] * 50

        def summarise_batch(worker=worker, batch=batch):
            worker.summarise_many(batch)

        runs = [per_call_us(summarise_batch, args.requests // 500) / 50 for _ in range(5)]
        results[f"summarise_us_{name}_batched_50"] = round(statistics.median(runs), 1)

    full = DriftMonitor(enabled=True)
    for _ in range(1000):
        full.summarise("s", 1, {"x": rng.normal(size=(1, 4))}, scores)
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        full.report("s", serving_version=1)
        runs.append((time.perf_counter() - started) * 1000)
    results["report_ms"] = round(statistics.median(runs), 2)
    results["cores"] = os.cpu_count()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
