"""Canary and shadow on the serving port: what they cost the caller.

One tiny ONNX classifier ([1, 16] in, 10 classes out) on a slot, measured with `wrk`
(one connection, then 8) on ``POST /api/v1/slots/{slot}/predict`` of the worker's
serving port in three states of the slot:

- ``plain``: the active version alone;
- ``canary``: a second version answering 50% of the requests (random arm, no key);
- ``shadow``: a second version getting a copy of every request (off the request path).

The caller's p50/p99 and req/s per state, and the arms' own figures from
``GET /api/v1/slots/{slot}/arms`` at the end (the shadow's requests, skipped, agreement).
On two shared cores a shadow still takes CPU from the primary: what this measures is
how much the caller notices.
Usage: .venv/bin/python benchmarks/canary.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import emit, print_table, serving_deployment  # noqa: E402
from dataplane import WRK_SCRIPT, wrk  # noqa: E402

SLOT = "bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    from modelmgr.demo import build_classifier

    features = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    body = json.dumps({"inputs": {"features": features.tolist()}})
    runs: dict[str, dict] = {}
    with serving_deployment() as dep:
        for version, seed in (("1", 7), ("2", 8)):
            path = build_classifier(dep.tmp / f"classifier-{version}.onnx", seed=seed)
            dep.register(path, name="bench-classifier", version=version)
        dep.start_all()
        url = f"{dep.serve_url}/api/v1/slots/{SLOT}/predict"
        (dep.tmp / "body.json").write_text(body)
        script = dep.tmp / "predict.lua"
        script.write_text(WRK_SCRIPT.format(body=dep.tmp / "body.json", token=dep.read_token))
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=60) as web:
            web.post("/api/v1/slots", json={"name": SLOT, "task": "classifier"}).raise_for_status()
            web.post("/api/v1/switch", json={SLOT: "bench-classifier@1"}).raise_for_status()
            dep.wait_ready()
            states = {
                "plain": None,
                "canary": ("canary", {"version": "bench-classifier@2", "share": 0.5}),
                "shadow": ("shadow", {"version": "bench-classifier@2"}),
            }
            arms, before = {}, {}
            for state, change in states.items():
                before[state] = web.get(f"/api/v1/slots/{SLOT}/arms").json()["arms"]
                if change is not None:
                    web.post(f"/api/v1/slots/{SLOT}/abort")  # 409 from plain: nothing to abort
                    web.post(f"/api/v1/slots/{SLOT}/{change[0]}", json=change[1]).raise_for_status()
                wrk(url, script, 2, 1)  # warm-up
                for connections in (1, 8):
                    runs[f"{state}_{connections}"] = wrk(url, script, args.seconds, connections)
                arms[state] = web.get(f"/api/v1/slots/{SLOT}/arms").json()["arms"]

    rows = [
        (
            name,
            f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, "
            f"failed {r['failed']}",
        )
        for name, r in runs.items()
    ]
    print_table("caller's view (wrk, serving port)", rows)
    shadow = arms["shadow"]["shadow"]
    canary = arms["canary"]
    # The primary's figures run on from the plain state (the same version): count from there.
    primary_in_canary = canary["primary"]["requests"] - before["canary"]["primary"]["requests"]
    figures = {
        "seconds": args.seconds,
        **{f"{name}_rps": round(r["rps"], 1) for name, r in runs.items()},
        **{f"{name}_p50_ms": r["p50_ms"] for name, r in runs.items()},
        **{f"{name}_p99_ms": r["p99_ms"] for name, r in runs.items()},
        "failed": sum(r["failed"] for r in runs.values()),
        "canary_share_seen": round(
            canary["canary"]["requests"] / max(1, canary["canary"]["requests"] + primary_in_canary),
            3,
        ),
        "shadow_requests": shadow["requests"],
        "shadow_skipped": shadow["skipped"],
        "shadow_compared": shadow["compared"],
        "shadow_p50_ms": shadow["p50_ms"],
        "shadow_argmax_agreement": shadow["argmax_agreement"],
    }
    emit(figures)


if __name__ == "__main__":
    main()
