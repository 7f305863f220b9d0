"""uvicorn (httptools + uvloop) serving the worker's ASGI apps on pre-bound sockets.

The worker runs two servers on one event loop: the private control API (WorkerApp) and
the public serving port (ServingApp). Both share the Worker, so a swap is seen by both
at once and no request crosses a process boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket

import uvicorn
from uvicorn._compat import asyncio_run


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # uvicorn re-raises a captured signal after serving (exit status -15); the
        # management command stops the server through should_exit and exits 0 instead.
        yield


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def build_server(
    app, *, host: str, port: int | None, socket_path: str | None = None
) -> tuple[Server, list[socket.socket]]:
    """A uvicorn server on pre-bound sockets (TCP and/or a Unix socket); signals are left
    to the caller, which owns the shutdown."""
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=30,
        backlog=2048,
        loop="uvloop" if available("uvloop") else "asyncio",
        http="httptools" if available("httptools") else "h11",
    )
    sockets = []
    if port is not None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sockets.append(sock)
    if socket_path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(socket_path)
        os.chmod(socket_path, 0o660)
        sockets.append(sock)
    for sock in sockets:
        sock.listen(2048)
        sock.setblocking(False)
    return Server(config), sockets


def run_servers(servers: list[tuple[Server, list[socket.socket]]]) -> None:
    """Serve every (server, sockets) pair on one event loop until all have stopped."""

    async def serve_all() -> None:
        await asyncio.gather(*(server.serve(sockets=sockets) for server, sockets in servers))

    asyncio_run(serve_all(), loop_factory=servers[0][0].config.get_loop_factory())
