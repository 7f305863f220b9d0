"""Hot-swap under load: 32 concurrent clients call a slot through the public API while
it switches between two versions 100 times.

Targets (issue #3): 0 failed requests; p99 during swaps <= 2x steady p99; no stall over
50 ms; worker RSS growth <= 100 MB.
"Steady" requests are those that neither started nor ended inside a switch's window;
"swap" requests overlap one. A stall is the longest latency of a request in a swap window.
For context it also prints the longest steady request and the longest time inside a swap
window with no response completing at all (the slot not answering anyone).
Usage: .venv/bin/python benchmarks/hotswap.py [--swaps 100] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import emit, percentile, print_table, serving_deployment  # noqa: E402

PREDICT_PATH = "/api/v1/slots/bench/predict"


async def client_loop(client, path, body, stop, records):
    while not stop.is_set():
        started = time.perf_counter()
        try:
            r = await client.post(path, content=body)
            ok = r.status_code == 200
            detail = "" if ok else f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            ok, detail = False, repr(exc)
        records.append((started, time.perf_counter(), ok, detail))


async def _load(url: str, path: str, headers: dict, body: bytes, clients: int, stop_flag) -> list:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    records: list[tuple[float, float, bool, str]] = []
    stop = asyncio.Event()

    async def watch_stop():
        while not stop_flag.is_set():
            await asyncio.sleep(0.05)
        stop.set()

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as c:
        watcher = asyncio.create_task(watch_stop())
        await asyncio.gather(*(client_loop(c, path, body, stop, records) for _ in range(clients)))
        await watcher
    return records


def load_process(url, path, headers, body, clients, stop_flag, results) -> None:
    """One load-generator process. One asyncio process cannot drive 32 httpx clients
    without becoming the bottleneck itself, so the clients are spread over several; their
    perf_counter stamps share the system's monotonic clock and compare across processes."""
    wall, cpu = time.perf_counter(), time.process_time()
    records = asyncio.run(_load(url, path, headers, body, clients, stop_flag))
    busy = (time.process_time() - cpu) / max(1e-9, time.perf_counter() - wall)
    results.put((records, busy))


def run(dep, swaps: int, clients: int, procs: int, warm_s: float):
    features = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    body = json.dumps({"inputs": {"features": features.tolist()}}).encode()
    headers = {**dep.auth(), "Content-Type": "application/json"}
    context = multiprocessing.get_context("spawn")
    stop_flag, results = context.Event(), context.Queue()
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers = [
        context.Process(
            target=load_process,
            args=(dep.web_url, PREDICT_PATH, headers, body, n, stop_flag, results),
        )
        for n in shares
        if n
    ]
    for process in workers:
        process.start()
    windows: list[tuple[float, float]] = []
    switch_ms: list[float] = []
    switch_errors: list[str] = []
    with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=120) as control:
        time.sleep(warm_s)  # steady state before the first swap
        for i in range(swaps):
            target = "bench-classifier@2" if i % 2 == 0 else "bench-classifier@1"
            started = time.perf_counter()
            r = control.post("/api/v1/switch", json={"bench": target})
            ended = time.perf_counter()
            windows.append((started, ended))
            switch_ms.append((ended - started) * 1000)
            if r.status_code != 200:
                switch_errors.append(f"{r.status_code} {r.text[:200]}")
            time.sleep(0.05)
        time.sleep(warm_s)
    stop_flag.set()
    records, busy = [], []
    for _ in workers:
        got, cpu_share = results.get(timeout=120)
        records.extend(got)
        busy.append(cpu_share)
    for process in workers:
        process.join(timeout=30)
    records.sort()
    return records, windows, switch_ms, switch_errors, max(busy)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warm-s", type=float, default=5.0)
    parser.add_argument(
        "--procs", type=int, default=min(4, os.cpu_count() or 1), help="load processes"
    )
    args = parser.parse_args()

    from modelmgr.demo import build_classifier

    with serving_deployment() as dep:
        dep.register(
            build_classifier(dep.tmp / "c1.onnx", seed=1), name="bench-classifier", version="1"
        )
        dep.register(
            build_classifier(dep.tmp / "c2.onnx", seed=2), name="bench-classifier", version="2"
        )
        dep.start_all()
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=60) as web:
            web.post(
                "/api/v1/slots", json={"name": "bench", "task": "classifier"}
            ).raise_for_status()
            web.post("/api/v1/switch", json={"bench": "bench-classifier@1"}).raise_for_status()
        dep.wait_ready()
        worker_proc = psutil.Process(dep.worker.pid)
        rss_before = worker_proc.memory_info().rss
        records, windows, switch_ms, switch_errors, client_cpu = run(
            dep, args.swaps, args.clients, args.procs, args.warm_s
        )
        rss_after = worker_proc.memory_info().rss

    def longest_silence_ms() -> float:
        ends = sorted(end for _, end, ok, _ in records if ok)
        worst = 0.0
        for w_start, w_end in windows:
            lo = max(bisect.bisect_left(ends, w_start) - 1, 0)
            hi = min(bisect.bisect_right(ends, w_end) + 1, len(ends))
            segment = ends[lo:hi]
            worst = max([worst, *(b - a for a, b in itertools.pairwise(segment))])
        return worst * 1000

    def overlaps(start, end):
        return any(start <= w_end and end >= w_start for w_start, w_end in windows)

    latencies = [(end - start) * 1000 for start, end, ok, _ in records if ok]
    failed = [detail for _, _, ok, detail in records if not ok]
    steady = [(e - s) * 1000 for s, e, ok, _ in records if ok and not overlaps(s, e)]
    during = [(e - s) * 1000 for s, e, ok, _ in records if ok and overlaps(s, e)]
    figures = {
        "swaps": args.swaps,
        "clients": args.clients,
        "load_procs": args.procs,
        # The busiest load process's CPU share: near 1.0 means the load generator, not the
        # server, may be setting the latencies.
        "load_cpu_max": round(client_cpu, 2),
        "requests": len(records),
        "failed": len(failed),
        "steady_p50_ms": round(percentile(steady, 50), 2),
        "steady_p99_ms": round(percentile(steady, 99), 2),
        "swap_p99_ms": round(percentile(during, 99), 2),
        "max_stall_ms": round(max(during) if during else 0.0, 2),
        "steady_max_ms": round(max(steady) if steady else 0.0, 2),
        "max_silence_during_swaps_ms": round(longest_silence_ms(), 2),
        "switch_ms_p50": round(percentile(switch_ms, 50), 1),
        "switch_failures": len(switch_errors),
        "worker_rss_growth_mb": round((rss_after - rss_before) / 1024**2, 1),
    }
    print_table(
        f"hotswap benchmark: {args.clients} clients in {args.procs} processes, {args.swaps} swaps",
        [
            ("requests (failed)", f"{figures['requests']} ({figures['failed']})  target 0 failed"),
            ("steady p50 / p99", f"{figures['steady_p50_ms']} / {figures['steady_p99_ms']} ms"),
            ("p99 during swaps", f"{figures['swap_p99_ms']} ms  (target <= 2x steady p99)"),
            ("longest stall during swaps", f"{figures['max_stall_ms']} ms  (target <= 50)"),
            ("longest steady request", f"{figures['steady_max_ms']} ms"),
            (
                "longest silence during swaps",
                f"{figures['max_silence_during_swaps_ms']} ms with no response completing",
            ),
            (
                "switch time p50",
                f"{figures['switch_ms_p50']} ms ({len(switch_errors)} failed switches)",
            ),
            ("load generator CPU (max)", f"{figures['load_cpu_max']:.0%} of a core"),
            ("worker RSS growth", f"{figures['worker_rss_growth_mb']} MB  (target <= 100)"),
            (
                "throughput",
                f"{len(latencies) / max(1e-9, records[-1][1] - records[0][0]):.0f} req/s"
                if records
                else "-",
            ),
        ],
    )
    for detail in (failed + switch_errors)[:5]:
        print("  e.g.", detail)
    emit(figures)


if __name__ == "__main__":
    main()
