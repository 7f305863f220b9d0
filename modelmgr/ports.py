"""Which ports `runall` uses, and a clear word when one is taken.

`make run PORT=8600` must move the whole app, not only the web process: unless
MODELMGR_WORKER_URL is set explicitly, the worker's control API listens on the web port + 1
and, unless MODELMGR_SERVE_PORT is set, its public serving port on the web port + 2. A second
instance on the same ports is refused before anything starts, with one line naming the
port and who wanted it (instead of an OSError traceback from deep inside a child).
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

WORKER_PORT_OFFSET = 1
SERVE_PORT_OFFSET = 2


@dataclass(frozen=True)
class Listener:
    role: str  # "web", "worker" (its private control API) or "serving" (its public port)
    host: str
    port: int


def worker_url_for(web_port: int, *, environ: dict[str, str] | None = None) -> str:
    """MODELMGR_WORKER_URL when set explicitly, else the loopback port after the web's."""
    explicit = (os.environ if environ is None else environ).get("MODELMGR_WORKER_URL")
    if explicit:
        return explicit
    return f"http://127.0.0.1:{web_port + WORKER_PORT_OFFSET}"


def worker_listener(worker_url: str) -> Listener:
    parts = urlsplit(worker_url)
    return Listener("worker", parts.hostname or "127.0.0.1", parts.port or 80)


def serve_listener(web_port: int, *, environ: dict[str, str] | None = None) -> Listener:
    """MODELMGR_SERVE_HOST/PORT when set, else loopback and the web port + 2."""
    environ = os.environ if environ is None else environ
    host = environ.get("MODELMGR_SERVE_HOST") or "127.0.0.1"
    port = environ.get("MODELMGR_SERVE_PORT")
    return Listener("serving", host, int(port) if port else web_port + SERVE_PORT_OFFSET)


def port_taken(host: str, port: int) -> bool:
    """True when binding host:port fails because something already listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # The same option the servers bind with, so a port in TIME_WAIT is not "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def first_taken(listeners: list[Listener]) -> str | None:
    """One line naming the first listener whose port is taken, or None when all are free."""
    for listener in listeners:
        if port_taken(listener.host, listener.port):
            hint = {
                "web": "choose another with PORT=... (make run) or --port (runall)",
                "worker": "the worker uses the web port + 1 unless MODELMGR_WORKER_URL "
                "says otherwise",
                "serving": "the serving port is the web port + 2 unless "
                "MODELMGR_SERVE_PORT says otherwise",
            }[listener.role]
            return (
                f"port {listener.port} on {listener.host} is already in use "
                f"(wanted by the {listener.role} process): is another modelmgr running? {hint}"
            )
    return None
