"""Ports in the import guard: private allow-list entries name a port, and the ports
modelmgr itself listens on are never importable.

An entry of MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS opens one port of a private host (a
local mirror), not the whole host: with a bare ``127.0.0.1`` a user could import the
worker's private API (``http://127.0.0.1:8001/status``) as a "model file". Forms:

- ``127.0.0.1:9000``, ``[fd00::5]:9000``, ``mirror.internal:8080``, ``10.20.0.0/16:9000``,
  ``*.internal:443``: that port only;
- ``mirror.internal:*``: every port (an explicit choice);
- a bare ``mirror.internal`` (or ``::1``): only the URL scheme's default port (80 for
  http, 443 for https), never every port.

Whatever the entries and MODELMGR_IMPORT_ALLOW_PRIVATE say, a non-public address on one
of modelmgr's own ports (the web process, the worker) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

ANY_PORT = -1
_WITH_PORT = re.compile(r"^(?P<host>\[[^\]]+\]|[^:\[\]]+):(?P<port>\d{1,5}|\*)$")

# Ports this process's server was started on (modelmgr.web_server notes them): the
# real ones, whatever MODELMGR_WEB_PORT says.
_noted: dict[int, str] = {}


@dataclass(frozen=True)
class PrivateEntry:
    pattern: str  # host name, "*.suffix", IP or CIDR: netguard.host_matches's forms
    port: int | None  # None: the scheme's default port; ANY_PORT: every port

    def allows_port(self, port: int, default_port: int) -> bool:
        if self.port == ANY_PORT:
            return True
        return port == (default_port if self.port is None else self.port)


def parse_private_entry(raw: str) -> PrivateEntry:
    entry = raw.strip()
    match = _WITH_PORT.match(entry)
    if match is None:
        return PrivateEntry(pattern=entry.strip("[]"), port=None)
    port = match["port"]
    return PrivateEntry(
        pattern=match["host"].strip("[]"), port=ANY_PORT if port == "*" else int(port)
    )


def note_own_listener(port: int, what: str) -> None:
    _noted[port] = what


def own_listener_ports() -> dict[int, str]:
    """Every port modelmgr listens on, with what listens there."""
    ports = {settings.MODELMGR_WEB_PORT: "the web process"}
    worker_url_port = urlsplit(settings.MODELMGR_WORKER_URL).port
    for port in (settings.MODELMGR_WORKER_PORT, worker_url_port):
        if port:
            ports[port] = "the inference worker"
    ports.update(_noted)
    return ports
