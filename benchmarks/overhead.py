"""Serving overhead: one tiny ONNX model called in-process, through the worker's API and
through the public API (/api/v1/slots/{slot}/predict), at concurrency 1.

Target (issue #3): added latency through the public API <= 1 ms p50.
Usage: .venv/bin/python benchmarks/overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import emit, percentile, print_table, serving_deployment  # noqa: E402


def time_calls(call, n: int) -> list[float]:
    for _ in range(min(200, n // 5)):  # warm-up: connections, caches, allocator
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()

    from modelmgr.demo import build_classifier

    with serving_deployment() as dep:
        model_path = build_classifier(dep.tmp / "classifier.onnx")
        dep.register(model_path, name="bench-classifier", version="1")
        dep.start_all()
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=30) as web:
            web.post(
                "/api/v1/slots", json={"name": "bench", "task": "classifier"}
            ).raise_for_status()
            response = web.post("/api/v1/switch", json={"bench": "bench-classifier@1"})
            response.raise_for_status()
        dep.wait_ready()

        features = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
        body = json.dumps({"inputs": {"features": features.tolist()}}).encode()

        import onnxruntime as ort

        ort.set_default_logger_severity(4)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        inproc = time_calls(lambda: session.run(None, {"features": features}), args.requests)

        headers = {"Content-Type": "application/json"}
        with httpx.Client(base_url=dep.worker_url, timeout=30) as worker:

            def via_worker():
                r = worker.post("/infer/bench", content=body, headers=headers)
                assert r.status_code == 200, r.text

            worker_ms = time_calls(via_worker, args.requests)
        with httpx.Client(
            base_url=dep.web_url, headers={**dep.auth(), **headers}, timeout=30
        ) as web:

            def via_api():
                r = web.post("/api/v1/slots/bench/predict", content=body)
                assert r.status_code == 200, r.text

            api_ms = time_calls(via_api, args.requests)

    figures = {
        "inproc_p50_ms": round(percentile(inproc, 50), 4),
        "worker_p50_ms": round(percentile(worker_ms, 50), 3),
        "api_p50_ms": round(percentile(api_ms, 50), 3),
        "api_p99_ms": round(percentile(api_ms, 99), 3),
    }
    figures["added_p50_ms"] = round(figures["api_p50_ms"] - figures["inproc_p50_ms"], 3)
    print_table(
        f"overhead benchmark: {args.requests} sequential requests, classifier [1,16]",
        [
            (
                "in-process session.run",
                f"p50 {figures['inproc_p50_ms']:.3f} ms  p99 {percentile(inproc, 99):.3f} ms",
            ),
            (
                "worker /infer",
                f"p50 {figures['worker_p50_ms']:.3f} ms  p99 {percentile(worker_ms, 99):.3f} ms",
            ),
            (
                "public API predict",
                f"p50 {figures['api_p50_ms']:.3f} ms  p99 {figures['api_p99_ms']:.3f} ms",
            ),
            ("added p50 (API - in-process)", f"{figures['added_p50_ms']:.3f} ms  (target <= 1.0)"),
        ],
    )
    emit(figures)


if __name__ == "__main__":
    main()
