"""A large upload through the real web process (daphne + modelmgr.web_server).

The Django test client never touches the server, so these go over a real socket: a
model upload must cost the server a few megabytes of memory whatever its size (twisted's
own multipart parsing once took 13× the body), and the stored bytes must be the sent
ones (the body reaches Django as twisted's temporary file, not a copy).
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time

import httpx
import psutil

from modelmgr.models import ModelVersion
from tests.conftest import make_token

PAYLOAD_MB = 96
# Far below the body size: buffering the body even once in memory would exceed it.
RSS_GROWTH_LIMIT_MB = 40


def _safetensors(tmp_path, payload_mb: int):
    payload = payload_mb * 2**20
    header = json.dumps(
        {"weights": {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "big.safetensors"
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for piece in (struct.pack("<Q", len(header)), header):
            fh.write(piece)
            digest.update(piece)
        block = hashlib.sha512(b"seed").digest() * (2**20 // 64)
        for i in range(payload_mb):
            chunk = block[i % 64 :] + block[: i % 64]  # no two MiB alike
            fh.write(chunk)
            digest.update(chunk)
    return path, digest.hexdigest()


class _PeakRss:
    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.baseline = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def test_a_large_upload_is_stored_intact_without_the_server_holding_it(web, owner, tmp_path):
    path, sha256 = _safetensors(tmp_path, PAYLOAD_MB)
    token = make_token(owner)
    url = f"{web.url}/api/v1/models/big-policy/versions"
    with httpx.Client(timeout=120) as client, _PeakRss(web.proc.pid) as rss:
        with path.open("rb") as fh:
            response = client.post(
                url,
                headers={"Authorization": f"Bearer {token}"},
                data={"task": "policy", "version": "1"},
                files={"file": ("big.safetensors", fh)},
            )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["framework"] == "safetensors"
    assert body["files"][0]["sha256"] == sha256
    assert body["files"][0]["size"] == path.stat().st_size
    assert rss.growth_mb < RSS_GROWTH_LIMIT_MB, (
        f"the web process grew by {rss.growth_mb:.0f} MB for a {PAYLOAD_MB} MB upload"
    )
    version = ModelVersion.objects.get(model__name="big-policy", version="1")
    assert version.files.get().sha256 == sha256


def test_small_bodies_and_form_posts_still_reach_django(web, owner):
    """Bodies twisted keeps in memory (under 100 kB) take Django's own path."""
    token = make_token(owner)
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(
        f"{web.url}/api/v1/models",
        headers=headers,
        json={"name": "small-one", "task": "detector", "description": "x" * 5000},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert created.json()["description"] == "x" * 5000
    # A multipart body just over twisted's in-memory limit, and one under it.
    for version, size in (("1", 150_000), ("2", 20_000)):
        header = json.dumps(
            {"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
        ).encode()
        header += b" " * (-len(header) % 8)
        data = struct.pack("<Q", len(header)) + header + bytes(size)
        response = httpx.post(
            f"{web.url}/api/v1/models/small-one/versions",
            headers=headers,
            data={"version": version},
            files={"file": ("w.safetensors", data)},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        assert response.json()["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
