"""Oversize and interrupted uploads through the real web process (daphne + twisted).

The cap must hold before the body is stored: twisted spools a body to a temporary file
before the application sees it, so an application-level check would let an anonymous
client fill the disk. These go over real sockets, with a small upload cap set through
the server's environment, and check that nothing is left behind: no rows, no staged
files, and no temporary file of the request still on disk or held open by the server.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from modelmgr.asgi_limits import MULTIPART_ALLOWANCE_BYTES
from modelmgr.models import RegisteredModel
from tests.api.rawhttp import (
    MULTIPART_CONTENT_TYPE,
    multipart_body,
    read_response,
    request_head,
    safetensors_bytes,
)
from tests.conftest import make_token
from tests.ingest.support import assert_nothing_stored
from tests.webproc import WebProcess
from tests.workerproc import worker_environment

UPLOAD_LIMIT = 256 * 1024
BODY_LIMIT = UPLOAD_LIMIT + MULTIPART_ALLOWANCE_BYTES
# A server that waited for the body would never answer: the socket times out first.
ANSWER_TIMEOUT_S = 5
URL = "/api/v1/models/capped/versions"

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="reads the server's open files from /proc"
)


@pytest.fixture
def web(transactional_db):
    process = WebProcess(
        env={**worker_environment(), "MODELMGR_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    )
    # twisted's request temp files go here, where the tests can look for them.
    process.env["TMPDIR"] = str(process.tmp / "tmp")
    (process.tmp / "tmp").mkdir()
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
def token(owner) -> str:
    return make_token(owner)


def _temp_files_held(web: WebProcess) -> list[str]:
    """The server's open files under its TMPDIR (twisted's are unlinked: '(deleted)')."""
    tmp = str(web.tmp / "tmp") + "/"
    held = []
    for fd in os.listdir(f"/proc/{web.proc.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{web.proc.pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(tmp):
            held.append(target)
    return held


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _assert_nothing_left(web: WebProcess) -> None:
    assert _wait_for(lambda: not _temp_files_held(web)), _temp_files_held(web)
    assert list((web.tmp / "tmp").iterdir()) == []
    assert not RegisteredModel.objects.exists()
    assert_nothing_stored()


def _connect(web: WebProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", web.port), timeout=ANSWER_TIMEOUT_S)


@pytest.mark.parametrize("expect_continue", [False, True], ids=["plain", "expect-100-continue"])
def test_a_declared_oversize_body_is_refused_at_once_without_reading_it(
    web, token, expect_continue
):
    declared = 10 * 2**30
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": MULTIPART_CONTENT_TYPE,
        "Content-Length": str(declared),
    }
    if expect_continue:
        headers["Expect"] = "100-continue"
    started = time.monotonic()
    with _connect(web) as sock:
        sock.sendall(request_head("POST", URL, headers) + b"--a few bytes of body")
        status, response_headers, body = read_response(sock)  # to the server's close
    assert status == 413, body
    assert time.monotonic() - started < ANSWER_TIMEOUT_S
    assert response_headers["connection"] == "close"
    assert response_headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "detail": f"request body of {declared} bytes exceeds the {UPLOAD_LIMIT} byte upload limit"
    }
    _assert_nothing_left(web)


def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_limit(web, token):
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": MULTIPART_CONTENT_TYPE,
        "Transfer-Encoding": "chunked",
    }
    body = multipart_body({"version": "1"}, filename="big.safetensors", data=bytes(BODY_LIMIT))
    piece = 64 * 1024
    # Stop one byte past the limit, where the server stops reading: with nothing of ours
    # unread, its close is a clean one and the 413 cannot be lost to a reset.
    with _connect(web) as sock:
        sock.sendall(request_head("POST", URL, headers))
        for start in range(0, BODY_LIMIT + 1, piece):
            chunk = body[start : min(start + piece, BODY_LIMIT + 1)]
            sock.sendall(b"%x\r\n%s" % (len(chunk), chunk))
            if start + len(chunk) <= BODY_LIMIT:
                sock.sendall(b"\r\n")
        status, response_headers, answer = read_response(sock)
    assert status == 413, answer
    assert response_headers["connection"] == "close"
    detail = json.loads(answer)["detail"]
    assert detail.startswith("request body of at least ") and f"{UPLOAD_LIMIT} byte" in detail
    _assert_nothing_left(web)


def test_a_chunked_body_that_keeps_coming_is_cut_off_and_nothing_is_kept(web, token):
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": MULTIPART_CONTENT_TYPE,
        "Transfer-Encoding": "chunked",
    }
    piece = bytes(256 * 1024)
    sent = 0
    with _connect(web) as sock:
        sock.sendall(request_head("POST", URL, headers))
        with pytest.raises(OSError):  # reset, broken pipe, or the server stopped reading
            while sent < 64 * 2**20:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
    _assert_nothing_left(web)


def test_an_upload_cut_off_half_way_leaves_nothing_behind(web, token):
    data = safetensors_bytes(200_000)  # over twisted's 100 kB: spooled to a temp file
    body = multipart_body({"version": "1"}, filename="w.safetensors", data=data)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": MULTIPART_CONTENT_TYPE,
        "Content-Length": str(len(body)),
    }
    with _connect(web) as sock:
        sock.sendall(request_head("POST", URL, headers) + body[: len(body) // 2])
        # The half body is on the server's disk: the check below can see such a file.
        assert _wait_for(lambda: len(_temp_files_held(web)) == 1), _temp_files_held(web)
    _assert_nothing_left(web)
    # The server is still fine: the same upload, whole, is stored.
    response = httpx.post(
        web.url + URL,
        headers={"Authorization": f"Bearer {token}"},
        data={"version": "1"},
        files={"file": ("w.safetensors", data)},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["files"][0]["size"] == len(data)


def test_a_body_under_the_limit_is_still_stored(web, token):
    data = safetensors_bytes(UPLOAD_LIMIT - 1024)
    response = httpx.post(
        web.url + URL,
        headers={"Authorization": f"Bearer {token}"},
        data={"version": "1"},
        files={"file": ("w.safetensors", data)},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["files"][0]["size"] == len(data)
    assert _wait_for(lambda: not _temp_files_held(web)), _temp_files_held(web)
