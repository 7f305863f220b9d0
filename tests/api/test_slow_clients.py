"""The real web process with clients that do not keep up.

A robot on a bad link downloading a large artifact must not make the server hold the
whole file in memory: the download goes at the client's pace (modelmgr.web_server's
send gate). Measured on the real daphne subprocess over a real socket.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time

import psutil
import pytest

from tests.conftest import make_token
from tests.registry.factories import make_model, make_version

FILE_MB = 96
# Far below the file size: with no backpressure the whole file would land in the
# server's send buffer within a second of the request.
RSS_GROWTH_LIMIT_MB = 40


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


@pytest.fixture
def big_version(transactional_db, owner):
    data = os.urandom(FILE_MB * 2**20)
    model = make_model(owner, "big-detector")
    make_version(model, "1", files={"weights.bin": data})
    return hashlib.sha256(data).hexdigest()


def _request(port: int, path: str, token: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, like a slow radio link: the kernel takes little on our side.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    return sock


def _read_rest(sock: socket.socket) -> bytes:
    sock.settimeout(60)
    parts = []
    while chunk := sock.recv(1 << 20):
        parts.append(chunk)
    return b"".join(parts)


def test_a_download_the_client_does_not_read_stays_out_of_server_memory(big_version, web, owner):
    token = make_token(owner, scopes=("read",))
    before = _rss_mb(web.proc.pid)
    sock = _request(web.port, "/api/v1/models/big-detector/versions/1/files/weights.bin", token)
    try:
        peak = before
        # Give the server ample time to (wrongly) push the whole file into its buffers.
        for _ in range(30):
            time.sleep(0.1)
            peak = max(peak, _rss_mb(web.proc.pid))
        assert peak - before < RSS_GROWTH_LIMIT_MB, (
            f"the server grew {peak - before:.0f} MB while the client read nothing"
        )
        raw = _read_rest(sock)
    finally:
        sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == FILE_MB * 2**20
    assert hashlib.sha256(body).hexdigest() == big_version


def test_a_client_that_hangs_up_mid_download_leaves_the_server_serving(big_version, web, owner):
    token = make_token(owner, scopes=("read",))
    path = "/api/v1/models/big-detector/versions/1/files/weights.bin"
    sock = _request(web.port, path, token)
    sock.recv(256 * 1024)
    sock.close()  # gone while the server waits for the socket to drain

    second = _request(web.port, path, token)
    try:
        raw = _read_rest(second)
    finally:
        second.close()
    body = raw.partition(b"\r\n\r\n")[2]
    assert hashlib.sha256(body).hexdigest() == big_version
    assert web.proc.poll() is None
