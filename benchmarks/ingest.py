"""Upload a generated 1 GB model file through the API; compare with `sha256sum`.

Targets (issue #2): server RSS growth <= 64 MB; throughput >= 50% of sha256sum's.
Usage: .venv/bin/python benchmarks/ingest.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import PeakRss, deployment, emit, free_port, print_table  # noqa: E402


def write_safetensors(path: Path, size_mb: int) -> int:
    """A real safetensors file (one uint8 tensor) so inspection runs on the upload too."""
    payload = size_mb * 1024 * 1024
    header = json.dumps(
        {"weights": {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    block = os.urandom(4 * 1024 * 1024)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(header)))
        fh.write(header)
        written = 0
        while written < payload:
            n = min(len(block), payload - written)
            fh.write(block[:n])
            written += n
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()

    with deployment() as dep:
        artifact = dep.tmp / "big.safetensors"
        size = write_safetensors(artifact, args.size_mb)

        # Warm the page cache for both measurements alike, then time sha256sum.
        subprocess.run(["cat", str(artifact)], stdout=subprocess.DEVNULL, check=True)
        started = time.perf_counter()
        subprocess.run(["sha256sum", str(artifact)], stdout=subprocess.DEVNULL, check=True)
        sha_s = time.perf_counter() - started

        port = free_port()
        web = dep.start_web(port)
        url = f"http://127.0.0.1:{port}/api/v1/models/bench-big/versions"
        headers = {"Authorization": f"Bearer {dep.token}"}
        with httpx.Client(timeout=600) as client:
            client.get(f"http://127.0.0.1:{port}/api/v1/health")
            time.sleep(0.5)
            with PeakRss(web.pid) as rss:
                baseline = rss.current()
                started = time.perf_counter()
                with artifact.open("rb") as fh:
                    response = client.post(
                        url,
                        headers=headers,
                        data={"task": "other"},
                        files={"file": ("big.safetensors", fh)},
                    )
                upload_s = time.perf_counter() - started
            if response.status_code != 201:
                raise SystemExit(f"upload failed: {response.status_code} {response.text[:500]}")
        growth_mb = (rss.peak - baseline) / 1024**2

    mb = size / 1024**2
    throughput = mb / upload_s
    sha_throughput = mb / sha_s
    ratio = throughput / sha_throughput
    print_table(
        f"ingest benchmark: {mb:.0f} MB safetensors through POST /api/v1/models/.../versions",
        [
            ("sha256sum", f"{sha_s:.2f} s  ({sha_throughput:.0f} MB/s)"),
            ("upload via API", f"{upload_s:.2f} s  ({throughput:.0f} MB/s)"),
            ("throughput vs sha256sum", f"{ratio:.2f}  (target >= 0.50)"),
            ("server RSS growth (peak)", f"{growth_mb:.1f} MB  (target <= 64)"),
        ],
    )
    emit(
        {
            "size_mb": round(mb, 1),
            "throughput_ratio_vs_sha256sum": round(ratio, 3),
            "server_rss_growth_mb": round(growth_mb, 1),
        }
    )


if __name__ == "__main__":
    main()
