"""Data plane: one tiny ONNX classifier ([1, 16] in, 10 classes out) reached four ways,
at 1 and at 32 connections:

(a) in-process ``session.run`` in a loop (the floor; concurrency 1 only);
(b) the worker's serving port, ``POST /api/v1/slots/{slot}/predict`` (read token);
(c) the serving port's Open Inference Protocol, ``POST /v2/models/{slot}/infer`` (JSON);
(d) the web port's ``POST /api/v1/slots/{slot}/predict`` (daphne, forwarded to the worker).

Targets (issue #10): on (b) at concurrency 1, added latency over (a) <= 0.3 ms p50 and
<= 1 ms p99; at 32 connections (b) >= 2x the req/s of (d) in the same run, p99 <= 30 ms.

The load generator is `wrk` (C, one thread: ``-t1``, so the server keeps the other core;
`apt-get install -y wrk`), with a Lua script for the POST body and the percentiles. Its
own CPU is measured (``wrk_cpu_*``: CPU seconds per wall second; 1.0 = a whole core).
The servers' CPU per request and their involuntary context switches (``*_server_*``)
show whether a tail is the server's work or waiting for a core another process holds.
Usage: .venv/bin/python benchmarks/dataplane.py [--seconds 10] [--inproc 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import emit, percentile, print_table, serving_deployment  # noqa: E402

SLOT = "bench"
# wrk runs this: POST the body file with the token, print percentiles and errors at the end.
WRK_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
done = function(summary, latency, requests)
  io.write(string.format("P50_US %d\\nP99_US %d\\nMAX_US %d\\n",
    latency:percentile(50), latency:percentile(99), latency.max))
  io.write(string.format("FAILED %d\\n", summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
        + ["-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figure = {k: int(v) for k, v in re.findall(r"^(P50_US|P99_US|MAX_US|FAILED) (\d+)$", out, re.M)}
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": figure["P50_US"] / 1000,
        "p99_ms": figure["P99_US"] / 1000,
        "max_ms": figure["MAX_US"] / 1000,
        "failed": figure["FAILED"],
        "wrk_cpu": cpu / wall,
    }


def server_usage(pids: list[int]) -> tuple[float, int]:
    """CPU seconds and involuntary context switches (preemptions) of the server processes."""
    cpu, preempted = 0.0, 0
    for pid in pids:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        cpu += times.user + times.system
        preempted += proc.num_ctx_switches().involuntary
    return cpu, preempted


def measured(url: str, script: Path, seconds: int, connections: int, pids: list[int]) -> dict:
    """A wrk run, plus the servers' CPU per request and how often they were preempted (on
    a shared machine a preempted server waits a scheduler slice: milliseconds of tail)."""
    cpu_before, preempted_before = server_usage(pids)
    run = wrk(url, script, seconds, connections)
    cpu_after, preempted_after = server_usage(pids)
    requests = max(1.0, run["rps"] * seconds)
    run["server_cpu_ms_per_req"] = (cpu_after - cpu_before) * 1000 / requests
    run["server_preempted"] = preempted_after - preempted_before
    return run


def inprocess(model_path: Path, features: np.ndarray, n: int) -> list[float]:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the worker runs a tiny model
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    feeds = {"features": features}
    for _ in range(min(2000, n // 5)):  # warm-up
        session.run(None, feeds)
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--inproc", type=int, default=20000, help="in-process calls")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from modelmgr.demo import build_classifier

    load_before = os.getloadavg()
    features = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    v1_body = json.dumps({"inputs": {"features": features.tolist()}})
    v2_body = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 16],
                    "datatype": "FP32",
                    "data": features.ravel().tolist(),
                }
            ]
        }
    )
    runs: dict[str, dict] = {}
    with serving_deployment() as dep:
        model_path = build_classifier(dep.tmp / "classifier.onnx")
        dep.register(model_path, name="bench-classifier", version="1")
        dep.start_all()
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=30) as web:
            web.post("/api/v1/slots", json={"name": SLOT, "task": "classifier"}).raise_for_status()
            web.post("/api/v1/switch", json={SLOT: "bench-classifier@1"}).raise_for_status()
        dep.wait_ready()

        routes = {
            "serve": (f"{dep.serve_url}/api/v1/slots/{SLOT}/predict", v1_body),
            "v2": (f"{dep.serve_url}/v2/models/{SLOT}/infer", v2_body),
            "web": (f"{dep.web_url}/api/v1/slots/{SLOT}/predict", v1_body),
        }
        scripts = {}
        for name, (url, body) in routes.items():
            (dep.tmp / f"{name}.json").write_text(body)
            scripts[name] = dep.tmp / f"{name}.lua"
            scripts[name].write_text(
                WRK_SCRIPT.format(body=dep.tmp / f"{name}.json", token=dep.read_token)
            )
            answer = httpx.post(
                url, content=body, headers={**dep.read_auth(), "content-type": "application/json"}
            )
            answer.raise_for_status()  # every route answers before it is measured

        inproc = inprocess(model_path, features, args.inproc)
        servers = {  # the processes that answer each route
            "serve": [dep.worker.pid],
            "v2": [dep.worker.pid],
            "web": [dep.web.pid, dep.worker.pid],
        }
        for connections in (1, 32):
            for name, (url, _) in routes.items():
                wrk(url, scripts[name], 2, connections)  # warm-up
                runs[f"{name}_{connections}"] = measured(
                    url, scripts[name], args.seconds, connections, servers[name]
                )
    load_after = os.getloadavg()

    inproc_p50, inproc_p99 = percentile(inproc, 50), percentile(inproc, 99)
    serve1, serve32, web32 = runs["serve_1"], runs["serve_32"], runs["web_32"]
    figures: dict = {
        "seconds": args.seconds,
        "inproc_p50_ms": round(inproc_p50, 4),
        "inproc_p99_ms": round(inproc_p99, 4),
        "added_p50_ms": round(serve1["p50_ms"] - inproc_p50, 3),
        "added_p99_ms": round(serve1["p99_ms"] - inproc_p99, 3),
        "serve_rps_32": round(serve32["rps"], 1),
        "web_rps_32": round(web32["rps"], 1),
        "serve_p99_32_ms": serve32["p99_ms"],
        "serve_vs_web_32": round(serve32["rps"] / web32["rps"], 2),
    }
    for key, run in runs.items():
        figures[f"{key}_rps"] = round(run["rps"], 1)
        figures[f"{key}_p50_ms"] = run["p50_ms"]
        figures[f"{key}_p99_ms"] = run["p99_ms"]
        figures[f"{key}_max_ms"] = run["max_ms"]
        figures[f"{key}_wrk_cpu"] = round(run["wrk_cpu"], 3)
        figures[f"{key}_server_cpu_ms_per_req"] = round(run["server_cpu_ms_per_req"], 3)
        figures[f"{key}_server_preempted"] = run["server_preempted"]
    figures["failed"] = sum(run["failed"] for run in runs.values())
    figures["loadavg_before"] = [round(x, 2) for x in load_before]
    figures["loadavg_after"] = [round(x, 2) for x in load_after]
    figures["targets"] = {
        "added_p50": figures["added_p50_ms"] <= 0.3,
        "added_p99": figures["added_p99_ms"] <= 1.0,
        "serve_2x_web_32": figures["serve_vs_web_32"] >= 2.0,
        "serve_p99_32": figures["serve_p99_32_ms"] <= 30.0,
        "no_failures": figures["failed"] == 0,
    }

    def row(run: dict) -> str:
        return (
            f"{run['rps']:7.0f} req/s  p50 {run['p50_ms']:.3f}  p99 {run['p99_ms']:.3f}  "
            f"max {run['max_ms']:.1f} ms  (wrk {run['wrk_cpu']:.2f} core; server "
            f"{run['server_cpu_ms_per_req']:.3f} ms CPU/req, preempted {run['server_preempted']}x)"
        )

    print_table(
        f"dataplane: tiny classifier [1,16], wrk -t1, {args.seconds} s per run",
        [
            ("(a) in-process session.run", f"p50 {inproc_p50:.4f}  p99 {inproc_p99:.4f} ms"),
            *(
                (f"({tag}) {label} c={c}", row(runs[f"{name}_{c}"]))
                for c in (1, 32)
                for tag, name, label in (
                    ("b", "serve", "serving predict"),
                    ("c", "v2", "serving v2 infer"),
                    ("d", "web", "web predict"),
                )
            ),
            ("added p50 (b - a, c=1)", f"{figures['added_p50_ms']} ms  (target <= 0.3)"),
            ("added p99 (b - a, c=1)", f"{figures['added_p99_ms']} ms  (target <= 1)"),
            ("(b) / (d) req/s at c=32", f"{figures['serve_vs_web_32']}x  (target >= 2)"),
            ("(b) p99 at c=32", f"{figures['serve_p99_32_ms']} ms  (target <= 30)"),
            (
                "load average before / after",
                f"{figures['loadavg_before']} / {figures['loadavg_after']}",
            ),
        ],
    )
    emit(figures)


if __name__ == "__main__":
    main()
