"""A real HTTP(S) file server on 127.0.0.1 for import tests.

Serves byte strings with ETag / Last-Modified, single ``bytes=N-`` ranges honouring
If-Range, redirects and forced statuses; can drop the connection after N body bytes
(once) or hold after N bytes until the test releases it. Records every request.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_TIMEOUT_S = 30


@dataclass
class Served:
    data: bytes = b""
    etag: str | None = '"v1"'
    last_modified: str | None = "Mon, 02 Nov 2026 10:00:00 GMT"
    content_type: str = "application/octet-stream"
    disposition: str | None = None
    redirect: str | None = None
    status: int | None = None
    send_length: bool = True
    ignore_range: bool = False
    drop_after: int | None = None  # body bytes sent before the connection drops (once)
    hold_after: int | None = None  # body bytes sent before waiting for ``release``
    drops: int = 1


@dataclass
class Request:
    path: str
    headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        owner: FileServer = self.server.owner  # type: ignore[attr-defined]
        owner.requests.append(Request(self.path, dict(self.headers.items())))
        served = owner.files.get(self.path.split("?", 1)[0])
        if served is None:
            return self._empty(404)
        if served.redirect:
            return self._empty(302, {"Location": served.redirect})
        if served.status:
            return self._empty(served.status)
        self._send_file(owner, served)

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, owner: FileServer, served: Served) -> None:
        data, start, status = served.data, 0, 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        validator_ok = if_range is None or if_range in (served.etag, served.last_modified)
        if wanted and not served.ignore_range and validator_ok:
            match = re.fullmatch(r"bytes=(\d+)-", wanted.strip())
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    return self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
                status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", served.content_type)
        self.send_header("Accept-Ranges", "bytes")
        if served.etag:
            self.send_header("ETag", served.etag)
        if served.last_modified:
            self.send_header("Last-Modified", served.last_modified)
        if served.disposition:
            self.send_header("Content-Disposition", served.disposition)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if served.send_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if served.drop_after is not None and served.drops > 0:
            served.drops -= 1
            self.wfile.write(body[: served.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if served.hold_after is not None:
            self.wfile.write(body[: served.hold_after])
            self.wfile.flush()
            owner.held.set()
            owner.release.wait(HOLD_TIMEOUT_S)
            body = body[served.hold_after :]
        self.wfile.write(body)
        self.wfile.flush()


class FileServer:
    def __init__(self, *, tls: ssl.SSLContext | None = None):
        self.files: dict[str, Served] = {}
        self.requests: list[Request] = []
        self.held = threading.Event()
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, data: bytes = b"", **options) -> Served:
        served = Served(data=data, **options)
        self.files[path] = served
        return served

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def requests_for(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]
