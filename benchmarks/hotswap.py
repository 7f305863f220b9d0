"""Hot-swap under load: 32 connections predict on a slot through the worker's serving port
(a read token) while the slot switches between two versions 100 times through the web API.

Targets (issues #3, #10): 0 failed requests; p99 during swaps <= 2x steady p99; the
longest request during swaps <= 50 ms; worker RSS growth <= 100 MB.
The load generator is `wrk` (C, one thread, so the server keeps the other core;
`apt-get install -y wrk`); its CPU share is reported (``wrk_cpu``, 1.0 = a whole core).
First a steady run with no switch, then a run that lasts exactly while the switches do
(wrk stops on SIGINT and reports). wrk gives no per-request timestamps, so "the longest
request during swaps" is the longest of the whole swap run: an upper bound.
Usage: .venv/bin/python benchmarks/hotswap.py [--swaps 100] [--clients 32]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import signal
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

PREDICT_PATH = "/api/v1/slots/bench/predict"
# POST the body with the token; keep the first failed answer; report at the end.
WRK_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local threads = {{}}
setup = function(thread) table.insert(threads, thread) end
first_error = ""
response = function(status, headers, body)
  if status ~= 200 and first_error == "" then
    first_error = status .. " " .. string.sub(body or "", 1, 200)
  end
end
done = function(summary, latency, requests)
  io.write(string.format("P50_US %d\\nP99_US %d\\nMAX_US %d\\nREQUESTS %d\\n",
    latency:percentile(50), latency:percentile(99), latency.max, summary.requests))
  io.write(string.format("FAILED %d\\n", summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, thread in ipairs(threads) do
    local e = thread:get("first_error")
    if e ~= "" then io.write("FIRST_ERROR " .. e .. "\\n") end
  end
end
"""


def start_wrk(url: str, script: Path, clients: int, seconds: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s"]
        + ["-s", str(script), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish_wrk(proc: subprocess.Popen, started: float, cpu_before) -> dict:
    out, _ = proc.communicate(timeout=120)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    got = dict(re.findall(r"^(P50_US|P99_US|MAX_US|REQUESTS|FAILED) (\d+)$", out, re.M))
    if "REQUESTS" not in got:
        raise RuntimeError(f"wrk gave no report: {out[-500:]}")
    return {
        "requests": int(got["REQUESTS"]),
        "failed": int(got["FAILED"]),
        "p50_ms": int(got["P50_US"]) / 1000,
        "p99_ms": int(got["P99_US"]) / 1000,
        "max_ms": int(got["MAX_US"]) / 1000,
        "rps": int(got["REQUESTS"]) / wall,
        "wrk_cpu": cpu / wall,
        "first_error": re.findall(r"^FIRST_ERROR (.*)$", out, re.M)[:1],
    }


def wrk_for(url: str, script: Path, clients: int, seconds: int) -> dict:
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    return finish_wrk(start_wrk(url, script, clients, seconds), started, before)


def run(dep, url: str, script: Path, swaps: int, clients: int, steady_s: int):
    wrk_for(url, script, clients, 2)  # warm-up
    steady = wrk_for(url, script, clients, steady_s)
    switch_ms: list[float] = []
    switch_errors: list[str] = []
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = start_wrk(url, script, clients, 3600)  # stopped by SIGINT after the last switch
    try:
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=120) as control:
            time.sleep(0.5)  # wrk connected and loading before the first switch
            for i in range(swaps):
                target = "bench-classifier@2" if i % 2 == 0 else "bench-classifier@1"
                t0 = time.perf_counter()
                r = control.post("/api/v1/switch", json={"bench": target})
                switch_ms.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    switch_errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
    during = finish_wrk(proc, started, before)
    return steady, during, switch_ms, switch_errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--steady-s", type=int, default=10, help="the run with no switch")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

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
        features = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
        (dep.tmp / "body.json").write_text(json.dumps({"inputs": {"features": features.tolist()}}))
        script = dep.tmp / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=dep.tmp / "body.json", token=dep.read_token))
        url = f"{dep.serve_url}{PREDICT_PATH}"
        worker_proc = psutil.Process(dep.worker.pid)
        rss_before = worker_proc.memory_info().rss
        steady, during, switch_ms, switch_errors = run(
            dep, url, script, args.swaps, args.clients, args.steady_s
        )
        rss_after = worker_proc.memory_info().rss

    figures = {
        "swaps": args.swaps,
        "clients": args.clients,
        "requests": steady["requests"] + during["requests"],
        "failed": steady["failed"] + during["failed"],
        "steady_rps": round(steady["rps"], 1),
        "steady_p50_ms": steady["p50_ms"],
        "steady_p99_ms": steady["p99_ms"],
        "steady_max_ms": steady["max_ms"],
        "swap_rps": round(during["rps"], 1),
        "swap_p50_ms": during["p50_ms"],
        "swap_p99_ms": during["p99_ms"],
        # The longest request of the run that spans the switches (an upper bound on the
        # longest one that overlapped a switch).
        "max_stall_ms": during["max_ms"],
        "switch_ms_p50": round(percentile(switch_ms, 50), 1),
        "switch_ms_max": round(max(switch_ms), 1),
        "switch_failures": len(switch_errors),
        "wrk_cpu": round(max(steady["wrk_cpu"], during["wrk_cpu"]), 3),
        "worker_rss_growth_mb": round((rss_after - rss_before) / 1024**2, 1),
    }
    figures["targets"] = {
        "no_failures": figures["failed"] == 0 and not switch_errors,
        "swap_p99_2x_steady": figures["swap_p99_ms"] <= 2 * figures["steady_p99_ms"],
        "max_stall_50ms": figures["max_stall_ms"] <= 50,
        "rss_100mb": figures["worker_rss_growth_mb"] <= 100,
    }
    print_table(
        f"hotswap benchmark: {args.clients} wrk connections on the serving port, "
        f"{args.swaps} swaps",
        [
            ("requests (failed)", f"{figures['requests']} ({figures['failed']})  target 0 failed"),
            (
                "steady p50 / p99 / max",
                f"{steady['p50_ms']} / {steady['p99_ms']} / {steady['max_ms']} ms, "
                f"{steady['rps']:.0f} req/s",
            ),
            (
                "during swaps p50 / p99",
                f"{during['p50_ms']} / {during['p99_ms']} ms, {during['rps']:.0f} req/s "
                "(target p99 <= 2x steady)",
            ),
            ("longest request during swaps", f"{figures['max_stall_ms']} ms  (target <= 50)"),
            (
                "switch time p50 / max",
                f"{figures['switch_ms_p50']} / {figures['switch_ms_max']} ms "
                f"({len(switch_errors)} failed switches)",
            ),
            ("wrk CPU (max)", f"{figures['wrk_cpu']:.2f} of a core"),
            ("worker RSS growth", f"{figures['worker_rss_growth_mb']} MB  (target <= 100)"),
        ],
    )
    for detail in (steady["first_error"] + during["first_error"] + switch_errors)[:5]:
        print("  e.g.", detail)
    emit(figures)


if __name__ == "__main__":
    main()
