"""A plain HTTP/1.1 client over a socket that says whether a body arrived whole.

httpx and urllib raise on a short body but either hide which part was received or wait
forever on a server that stops sending without closing; this reads with a deadline and
reports what happened: the status, whether the body was complete (Content-Length met,
or the final chunk of a chunked body), and whether the deadline passed first.
"""

from __future__ import annotations

import json as _json
import socket
import time
from dataclasses import dataclass


@dataclass
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes
    complete: bool
    timed_out: bool

    def json(self):
        return _json.loads(self.body)


def _dechunk(raw: bytes) -> tuple[bytes, bool]:
    """The body of a chunked transfer and whether its terminating chunk arrived."""
    body = b""
    while True:
        line, sep, rest = raw.partition(b"\r\n")
        if not sep:
            return body, False
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            return body, False
        if size == 0:
            return body, True
        if len(rest) < size + 2:
            return body + rest[:size], False
        body += rest[:size]
        raw = rest[size + 2 :]


def fetch(
    port: int,
    path: str,
    token: str,
    *,
    timeout: float,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    json: dict | None = None,
) -> Fetched:
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        payload = b"" if json is None else _json.dumps(json).encode()
        headers = dict(headers or {})
        if json is not None:
            headers["Content-Type"] = "application/json"
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"{extra}Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        data = b""
        timed_out = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                timed_out = True
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, raw = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    got = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        got[name.strip().lower()] = value.strip()
    if got.get("transfer-encoding", "").lower() == "chunked":
        body, complete = _dechunk(raw)
    elif "content-length" in got:
        body = raw
        complete = len(raw) == int(got["content-length"])
    else:
        # Neither: the body ends with the connection, so only a timeout can say it is short.
        body, complete = raw, not timed_out
    status = int(status_line.split()[1]) if status_line else 0
    complete = complete and status != 0  # no answer at all is not a complete one
    return Fetched(status, got, body, complete, timed_out)
