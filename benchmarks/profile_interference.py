"""What a profile costs the slot that serves meanwhile: an MLP with eight 1024-wide
layers (32 MB of weights, benchmarks/batching.py's) serving at 4 connections through
the worker's /infer, measured by `wrk` without a profile, then while the same version
is profiled (its own copy, one run then a pause as long, inference.profile).

The profile holds at most about half of one core by design; on a 2-core machine that
shows as lower throughput and a higher tail. Figures: serving req/s and p50/p95/p99
without and during the profile, their ratios, failed requests (target 0), and the
profile's own p50 at batch 1.
Usage: .venv/bin/python benchmarks/profile_interference.py [--seconds 10] [--connections 4]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import threading
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import emit, print_table, serving_deployment  # noqa: E402
from batching import WIDTH, WRK_SCRIPT, build_mlp, wrk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    with serving_deployment() as dep:
        dep.register(build_mlp(dep.tmp / "mlp.onnx"), name="mlp", version="1")
        dep.start_all()
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=300) as web:
            web.post("/api/v1/slots", json={"name": "mlp"}).raise_for_status()
            web.post("/api/v1/switch", json={"mlp": "mlp@1"}).raise_for_status()
            dep.wait_ready()
            body = io.BytesIO()
            np.save(body, np.random.default_rng(1).standard_normal((1, WIDTH)).astype(np.float32))
            (dep.tmp / "body.npy").write_bytes(body.getvalue())
            script = dep.tmp / "post.lua"
            script.write_text(WRK_SCRIPT.format(body=dep.tmp / "body.npy"))
            url = f"{dep.worker_url}/infer/mlp"

            wrk(url, script, 3, args.connections)  # warm-up
            quiet = wrk(url, script, args.seconds, args.connections)

            answer: dict = {}

            def profile() -> None:
                answer["response"] = web.post(
                    "/api/v1/versions/mlp@1/profile",
                    json={"iterations": 1000, "max_seconds": args.seconds + 4},
                )

            thread = threading.Thread(target=profile)
            thread.start()
            # The copy loads and warms up first; measure once the profile is running.
            threading.Event().wait(2.0)
            during = wrk(url, script, args.seconds, args.connections)
            thread.join()
            answer["response"].raise_for_status()
            result = answer["response"].json()["results"]

    figures = {
        "connections": args.connections,
        "quiet_rps": round(quiet["rps"], 1),
        "during_rps": round(during["rps"], 1),
        "rps_ratio": round(during["rps"] / quiet["rps"], 3),
        "quiet_p50_ms": quiet["p50_ms"],
        "during_p50_ms": during["p50_ms"],
        "quiet_p95_ms": quiet["p95_ms"],
        "during_p95_ms": during["p95_ms"],
        "quiet_p99_ms": quiet["p99_ms"],
        "during_p99_ms": during["p99_ms"],
        "failed": quiet["failed"] + during["failed"],
        "profile_p50_ms_batch1": result[0]["p50_ms"],
        "profile_batches": [r["batch_size"] for r in result],
    }
    print_table(
        f"MLP 8x{WIDTH} serving at {args.connections} connections (wrk), a profile beside it",
        [
            ("without a profile", f"{quiet['rps']:.0f} req/s  p99 {quiet['p99_ms']:.2f} ms"),
            ("during a profile", f"{during['rps']:.0f} req/s  p99 {during['p99_ms']:.2f} ms"),
            ("failed requests", str(figures["failed"])),
            ("profile p50, batch 1", f"{figures['profile_p50_ms_batch1']:.2f} ms"),
        ],
    )
    emit(figures)


if __name__ == "__main__":
    main()
