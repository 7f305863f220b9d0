"""The worker's row in the registry (modelmgr.models.Worker): written on start, then a
heartbeat every MODELMGR_WORKER_HEARTBEAT_S with its memory.

The web process reads these rows to fan switches out and spread predictions
(modelmgr.deploy.fleet); a worker whose heartbeat is older than
MODELMGR_WORKER_DOWN_AFTER intervals is down there. A failed heartbeat (the database
away) is logged and retried at the next interval: the worker keeps serving.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from inference.pool import short_error
from modelmgr.models import Worker as WorkerRow

if TYPE_CHECKING:
    from inference.worker import Worker

log = logging.getLogger("inference")


@dataclass(frozen=True)
class Identity:
    name: str
    control_url: str
    serve_url: str
    group: str


def _url(host: str, port: int | None) -> str:
    if port is None:
        return ""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def identity_for(
    *, host: str, port: int | None, serve_host: str, serve_port: int | None
) -> Identity | None:
    """Who this worker says it is; None when the web could not reach it over TCP (a
    Unix-socket-only worker is the single worker of MODELMGR_WORKER_SOCKET)."""
    control = settings.MODELMGR_WORKER_ADVERTISE_URL or _url(host, port)
    if not control:
        return None
    serve = settings.MODELMGR_SERVE_ADVERTISE_URL or _url(serve_host, serve_port)
    name = settings.MODELMGR_WORKER_NAME or control.split("://", 1)[-1]
    return Identity(
        name=name,
        control_url=control,
        serve_url=serve,
        group=settings.MODELMGR_WORKER_GROUP or "default",
    )


def worker_heartbeat(worker: Worker, identity: Identity, *, starting: bool = False) -> None:
    """Write this worker's row (created on the first call, refreshed on every other)."""
    memory = worker.pool.memory()
    now = timezone.now()
    fields = {
        "control_url": identity.control_url,
        "serve_url": identity.serve_url,
        "group": identity.group,
        "device": worker.device.device,
        "device_name": worker.device.name[:200],
        "memory_budget_bytes": memory.budget_bytes,
        "memory_free_bytes": memory.free_bytes,
        "heartbeat_s": settings.MODELMGR_WORKER_HEARTBEAT_S,
        "heartbeat_at": now,
        "pid": os.getpid(),
    }
    if starting:
        fields["started_at"] = now
        WorkerRow.objects.update_or_create(name=identity.name, defaults=fields)
        return
    if not WorkerRow.objects.filter(name=identity.name).update(**fields):
        # The row was deleted (an operator, a test teardown): register again.
        WorkerRow.objects.update_or_create(
            name=identity.name, defaults={**fields, "started_at": now}
        )


def heartbeat_loop(worker: Worker, identity: Identity, stop: threading.Event) -> None:
    """Register, then heartbeat until ``stop``; the row stays (marked down by its age)."""
    from inference.worker import db_pass

    first = True
    while True:
        try:
            with db_pass():
                worker_heartbeat(worker, identity, starting=first)
            first = False
        except Exception as exc:  # noqa: BLE001 - the database may be away; retry
            log.warning("worker heartbeat failed (retrying): %s", short_error(exc))
        if stop.wait(settings.MODELMGR_WORKER_HEARTBEAT_S):
            return


def worker_signed_off(identity: Identity) -> None:
    """A clean stop: the row says down at once instead of after the missed heartbeats."""
    WorkerRow.objects.filter(name=identity.name).update(
        heartbeat_at=timezone.now() - timezone.timedelta(days=1)
    )
