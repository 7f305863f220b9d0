"""Dynamic batching: an MLP with eight 1024-wide layers (32 MB of weights) at 16
concurrent connections, with and without the worker's batching (inference.batching),
through the worker's /infer.

Targets (issue #10): throughput with batching >= 2x without, at equal or lower p95.
The load generator is `wrk` (C; `apt-get install -y wrk`), so the server keeps the CPU:
its own CPU time is measured and reported (``wrk_cpu_share``: CPU seconds per wall
second over the runs; 2.0 would be both cores). Bodies are .npy (one [1, 1024] float32
row), answers JSON (10 floats).
Usage: .venv/bin/python benchmarks/batching.py [--seconds 15] [--connections 16]
       [--max-batch 16] [--delay-us 2000]
"""

from __future__ import annotations

import argparse
import io
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import emit, print_table, serving_deployment  # noqa: E402

WIDTH, LAYERS, CLASSES = 1024, 8, 10
# wrk runs this: POST the body file, and print p95 (not in its --latency table) at the end.
WRK_SCRIPT = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/x-npy"
done = function(summary, latency, requests)
  io.write(string.format("P95_US %d\\nP50_US %d\\nP99_US %d\\n",
    latency:percentile(95), latency:percentile(50), latency:percentile(99)))
  io.write(string.format("NON2XX %d\\n", summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def build_mlp(path: Path) -> Path:
    """[batch, 1024] -> 4 x (MatMul 1024x1024 + Add + Relu) -> MatMul 1024x10 -> [batch, 10]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, last = [], [], "x"
    for i in range(LAYERS):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        b = np.zeros(WIDTH, dtype=np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
            helper.make_node("Relu", [f"a{i}"], [f"h{i}"]),
        ]
        last = f"h{i}"
    head = (rng.standard_normal((WIDTH, CLASSES)) / np.sqrt(WIDTH)).astype(np.float32)
    inits.append(numpy_helper.from_array(head, "head"))
    nodes.append(helper.make_node("MatMul", [last, "head"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figure = dict(re.findall(r"^(P95_US|P50_US|P99_US|NON2XX) (\d+)$", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    return {
        "rps": rps,
        "p50_ms": int(figure["P50_US"]) / 1000,
        "p95_ms": int(figure["P95_US"]) / 1000,
        "p99_ms": int(figure["P99_US"]) / 1000,
        "failed": int(figure["NON2XX"]),
        "wrk_cpu_share": cpu / wall,
    }


def batch_stats(worker_url: str) -> dict:
    return httpx.get(f"{worker_url}/batching", timeout=10).json()["slots"].get("mlp") or {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--delay-us", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    with serving_deployment() as dep:
        model_path = build_mlp(dep.tmp / "mlp.onnx")
        dep.register(model_path, name="mlp", version="1")
        dep.start_all()
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=60) as web:
            web.post("/api/v1/slots", json={"name": "mlp"}).raise_for_status()
            web.post("/api/v1/switch", json={"mlp": "mlp@1"}).raise_for_status()
            dep.wait_ready()

            body = io.BytesIO()
            x = np.random.default_rng(1).standard_normal((1, WIDTH)).astype(np.float32)
            np.save(body, x)
            (dep.tmp / "body.npy").write_bytes(body.getvalue())
            script = dep.tmp / "post.lua"
            script.write_text(WRK_SCRIPT.format(body=dep.tmp / "body.npy"))
            url = f"{dep.worker_url}/infer/mlp"
            answer = httpx.post(
                url, content=body.getvalue(), headers={"content-type": "application/x-npy"}
            )
            answer.raise_for_status()

            wrk(url, script, 3, args.connections)  # warm-up
            plain = wrk(url, script, args.seconds, args.connections)

            web.put(
                "/api/v1/slots/mlp/batching",
                json={"max_batch_size": args.max_batch, "max_queue_delay_us": args.delay_us},
            ).raise_for_status()
            deadline = time.monotonic() + 30
            while "mlp" not in httpx.get(f"{dep.worker_url}/status").json()["batching"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker never applied the batching settings")
                time.sleep(0.1)
            wrk(url, script, 3, args.connections)  # warm-up
            before = batch_stats(dep.worker_url)
            batched = wrk(url, script, args.seconds, args.connections)
            after = batch_stats(dep.worker_url)

    batches = after["batches"] - before.get("batches", 0)
    requests = after["requests"] - before.get("requests", 0)
    figures = {
        "connections": args.connections,
        "max_batch_size": args.max_batch,
        "max_queue_delay_us": args.delay_us,
        "plain_rps": round(plain["rps"], 1),
        "batched_rps": round(batched["rps"], 1),
        "speedup": round(batched["rps"] / plain["rps"], 2),
        "plain_p95_ms": plain["p95_ms"],
        "batched_p95_ms": batched["p95_ms"],
        "plain_p50_ms": plain["p50_ms"],
        "batched_p50_ms": batched["p50_ms"],
        "plain_p99_ms": plain["p99_ms"],
        "batched_p99_ms": batched["p99_ms"],
        "mean_batch": round(requests / batches, 2) if batches else None,
        "failed": plain["failed"] + batched["failed"],
        "wrk_cpu_share": round(max(plain["wrk_cpu_share"], batched["wrk_cpu_share"]), 3),
    }
    figures["target_met"] = (
        figures["speedup"] >= 2.0
        and figures["batched_p95_ms"] <= figures["plain_p95_ms"]
        and figures["failed"] == 0
    )
    print_table(
        f"MLP {LAYERS}x{WIDTH} at {args.connections} connections (wrk)",
        [
            ("without batching", f"{plain['rps']:.0f} req/s  p95 {plain['p95_ms']:.2f} ms"),
            ("with batching", f"{batched['rps']:.0f} req/s  p95 {batched['p95_ms']:.2f} ms"),
            ("speedup", f"{figures['speedup']}x (target >= 2x at equal or lower p95)"),
            ("mean batch", str(figures["mean_batch"])),
            ("wrk CPU share", f"{figures['wrk_cpu_share']} cores"),
        ],
    )
    emit(figures)


if __name__ == "__main__":
    main()
