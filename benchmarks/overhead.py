"""Serving overhead: one tiny ONNX model called in-process, through the worker's API and
through the public API (/api/v1/slots/{slot}/predict), at concurrency 1.

Target (issue #3): added latency through the public API <= 1 ms p50.
Usage: .venv/bin/python benchmarks/overhead.py [--requests 2000]

The client is the standard library's keep-alive ``http.client``, the cheapest common
client, so the figure is what the server adds. httpx costs ~0.6 ms per request of its own
on the 2-core VM (more than the worker's whole answer); the public API through httpx is
printed too (``api_httpx_p50_ms``), for comparison with the runs before 2026-11-26.
"""

from __future__ import annotations

import argparse
import http.client
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
        worker = http.client.HTTPConnection("127.0.0.1", dep.worker_port, timeout=30)
        worker_ms = time_calls(lambda: _post(worker, "/infer/bench", body, headers), args.requests)
        worker.close()
        api_headers = {**dep.auth(), **headers}
        web = http.client.HTTPConnection("127.0.0.1", dep.web_port, timeout=30)
        api_ms = time_calls(
            lambda: _post(web, "/api/v1/slots/bench/predict", body, api_headers), args.requests
        )
        web.close()
        with httpx.Client(base_url=dep.web_url, headers=api_headers, timeout=30) as web_httpx:

            def via_api_httpx():
                r = web_httpx.post("/api/v1/slots/bench/predict", content=body)
                assert r.status_code == 200, r.text

            api_httpx_ms = time_calls(via_api_httpx, args.requests)

    figures = {
        "inproc_p50_ms": round(percentile(inproc, 50), 4),
        "worker_p50_ms": round(percentile(worker_ms, 50), 3),
        "api_p50_ms": round(percentile(api_ms, 50), 3),
        "api_p99_ms": round(percentile(api_ms, 99), 3),
        "api_httpx_p50_ms": round(percentile(api_httpx_ms, 50), 3),
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
            (
                "public API predict via httpx",
                f"p50 {figures['api_httpx_p50_ms']:.3f} ms  "
                f"p99 {percentile(api_httpx_ms, 99):.3f} ms",
            ),
        ],
    )
    emit(figures)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> None:
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    content = response.read()
    assert response.status == 200, content


if __name__ == "__main__":
    main()
