"""Two workers behind one web process: 32 wrk connections predict across both serving
ports (16 each, a read token) while the slot switches back and forth through the web API,
each switch fanned out to both workers in two phases (modelmgr.deploy.fanout).

Target (issue #13): 0 failed requests, 0 failed switches. Also reported: requests per
second per serving port, p50/p99/max latency, switch time, and that both workers end on
the same version. On this 2-core VM both workers, the web process and two wrk processes
share the cores, so throughput does not scale with workers here (no GPU either).
Usage: .venv/bin/python benchmarks/fleet.py [--swaps 30] [--clients 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import PYTHON, emit, free_port, percentile, print_table, serving_deployment  # noqa: E402
from hotswap import PREDICT_PATH, WRK_SCRIPT, finish_wrk, start_wrk  # noqa: E402


def start_worker(dep, name: str) -> tuple[str, str]:
    """A registered worker ``name``; returns (control URL, serving URL)."""
    port, serve = free_port(), free_port()
    dep.env["MODELMGR_WORKER_NAME"] = name
    try:
        dep.start(
            [PYTHON, "manage.py", "runinference", "--host", "127.0.0.1", "--port", str(port)]
            + ["--serve-host", "127.0.0.1", "--serve-port", str(serve)],
            f"http://127.0.0.1:{port}/live",
        )
    finally:
        dep.env.pop("MODELMGR_WORKER_NAME")
    return f"http://127.0.0.1:{port}", f"http://127.0.0.1:{serve}"


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"worker {url} never became ready")


def served(url: str) -> str | None:
    return (httpx.get(f"{url}/status", timeout=10).json()["slots"].get("bench") or {}).get("ref")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--swaps", type=int, default=30)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from modelmgr.demo import build_classifier

    with serving_deployment() as dep:
        dep.env["MODELMGR_WORKER_HEARTBEAT_S"] = "1"
        for version, seed in (("1", 1), ("2", 2)):
            path = build_classifier(dep.tmp / f"c{version}.onnx", seed=seed)
            dep.register(path, name="bench-classifier", version=version)
        workers = [start_worker(dep, name) for name in ("w1", "w2")]
        dep.env["MODELMGR_WORKER_URL"] = workers[0][0]
        dep.web = dep.start_web(dep.web_port)
        for control, _ in workers:
            wait_ready(control)
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=60) as web:
            web.post(
                "/api/v1/slots", json={"name": "bench", "task": "classifier"}
            ).raise_for_status()
            registered = [w["name"] for w in web.get("/api/v1/status").json()["workers"]]
            web.post("/api/v1/switch", json={"bench": "bench-classifier@1"}).raise_for_status()
            features = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
            body = dep.tmp / "body.json"
            body.write_text(json.dumps({"inputs": {"features": features.tolist()}}))
            script = dep.tmp / "post.lua"
            script.write_text(WRK_SCRIPT.format(body=body, token=dep.read_token))
            per_port = args.clients // len(workers)
            before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            procs = [
                start_wrk(f"{serve}{PREDICT_PATH}", script, per_port, 3600) for _, serve in workers
            ]
            switch_ms: list[float] = []
            switch_errors: list[str] = []
            try:
                time.sleep(1.0)  # wrk connected and loading before the first switch
                for i in range(args.swaps):
                    target = f"bench-classifier@{2 if i % 2 == 0 else 1}"
                    t0 = time.perf_counter()
                    r = web.post("/api/v1/switch", json={"bench": target})
                    switch_ms.append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        switch_errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(0.5)
            finally:
                for proc in procs:
                    proc.send_signal(2)  # SIGINT: wrk stops and reports
            runs = [finish_wrk(proc, started, before) for proc in procs]
            ends = [served(control) for control, _ in workers]

    requests = sum(r["requests"] for r in runs)
    failed = sum(r["failed"] for r in runs)
    figures = {
        "workers": len(workers),
        "registered": registered,
        "swaps": args.swaps,
        "clients": args.clients,
        "requests": requests,
        "failed": failed,
        "rps_total": round(sum(r["rps"] for r in runs), 1),
        "rps_per_port": [round(r["rps"], 1) for r in runs],
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "max_ms": max(r["max_ms"] for r in runs),
        "switch_ms_p50": round(percentile(switch_ms, 50), 1),
        "switch_ms_max": round(max(switch_ms), 1) if switch_ms else None,
        "switch_failures": len(switch_errors),
        "workers_agree": len(set(ends)) == 1,
        "ends_on": ends,
    }
    figures["targets"] = {"no_failures": failed == 0 and not switch_errors}
    print_table(
        f"fleet benchmark: {len(workers)} workers, {args.clients} wrk connections across "
        f"their serving ports, {args.swaps} fan-out switches",
        [
            ("requests (failed)", f"{requests} ({failed})  target 0 failed"),
            ("req/s per serving port", ", ".join(str(x) for x in figures["rps_per_port"])),
            (
                "p50 / p99 / max",
                f"{figures['p50_ms']} / {figures['p99_ms']} / {figures['max_ms']} ms (worst port)",
            ),
            (
                "switch time p50 / max",
                f"{figures['switch_ms_p50']} / {figures['switch_ms_max']} "
                f"ms ({len(switch_errors)} failed switches)",
            ),
            ("both workers end on", ", ".join(str(e) for e in ends)),
        ],
    )
    for detail in ([e for r in runs for e in r["first_error"]] + switch_errors)[:5]:
        print("  e.g.", detail)
    emit(figures)


if __name__ == "__main__":
    main()
