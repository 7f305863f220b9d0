"""A minimal keep-alive HTTP/1.1 client for the predict hot path to our own worker.

httpx costs ~0.7 ms per request on a small machine, more than the worker's whole answer;
asyncio streams cost ~0.2 ms. The peer is always the worker (uvicorn), so this speaks
just the HTTP/1.1 it needs: a POST with Content-Length, a response framed by
Content-Length or chunked encoding (or, failing both, by closing). Control calls keep
using httpx (modelmgr.deploy.client).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


class WireError(Exception):
    """The connection failed; ``cause`` says how, in words."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


@dataclass
class WireResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class WirePool:
    """Idle connections of one event loop to one worker (TCP host:port or a Unix socket)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        socket: str = "",
        connect_timeout: float,
        timeout: float,
        max_idle: int = 64,
    ):
        self.host, self.port, self.socket = host, port, socket
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self.idle: deque[_Conn] = deque()
        self.max_idle = max_idle
        self.host_header = f"{host}:{port}".encode() if not socket else b"worker"

    async def _connect(self) -> _Conn:
        try:
            if self.socket:
                opening = asyncio.open_unix_connection(self.socket)
            else:
                opening = asyncio.open_connection(self.host, self.port)
            return await asyncio.wait_for(opening, self.connect_timeout)
        except TimeoutError:
            raise WireError(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise WireError(f"cannot connect ({exc.strerror or exc})") from None

    def _take(self) -> _Conn | None:
        while self.idle:
            reader, writer = self.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> WireResponse:
        """POST and read the whole response; a reused connection the worker closed while it
        sat idle is retried once on a fresh one (nothing was answered on it)."""
        head = [
            f"POST {path} HTTP/1.1".encode(),
            b"host: " + self.host_header,
            b"content-length: " + str(len(body)).encode(),
        ]
        head += [f"{k}: {v}".encode("latin-1") for k, v in headers.items()]
        request = b"\r\n".join(head) + b"\r\n\r\n" + body
        conn = self._take()
        if conn is not None:
            try:
                return await self._exchange(conn, request)
            except _Stale:
                pass
        return await self._exchange(await self._connect(), request, fresh=True)

    async def _exchange(self, conn: _Conn, request: bytes, *, fresh: bool = False) -> WireResponse:
        reader, writer = conn
        try:
            # One deadline for the whole exchange; asyncio.timeout costs far less per
            # request than wait_for, which wraps each await in a task of its own.
            async with asyncio.timeout(self.timeout):
                writer.write(request)
                try:
                    status_line = await reader.readline()
                except (ConnectionError, asyncio.IncompleteReadError):
                    status_line = b""
                if not status_line:
                    writer.close()
                    if not fresh:
                        raise _Stale
                    raise WireError("the connection broke (closed before an answer)")
                response, reusable = await self._read_rest(reader, status_line)
        except TimeoutError:
            writer.close()
            raise WireError(f"no answer within {self.timeout:g} s") from None
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            raise WireError(f"the connection broke ({exc or type(exc).__name__})") from None
        if reusable and len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            writer.close()
        return response

    async def _read_rest(
        self, reader: asyncio.StreamReader, status_line: bytes
    ) -> tuple[WireResponse, bool]:
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        reusable = headers.get("connection", "").lower() != "close"
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            content = await _read_chunked(reader)
        else:
            content, reusable = await reader.read(), False
        return WireResponse(status, headers, content), reusable

    def close(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()


class _Stale(Exception):
    """A pooled connection the worker had closed: try again on a fresh one."""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
