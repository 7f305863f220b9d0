"""`manage.py runinference`: the inference worker (data plane).

Holds the models, serves robots on its public serving port (MODELMGR_SERVE_HOST/PORT:
token auth, v1 predict, Open Inference Protocol v2) and the web process on its private
control API (MODELMGR_WORKER_HOST/PORT or a Unix socket), and converges to the
database's desired state: restore on start, a reconcile after each nudge and
periodically. SIGTERM/SIGINT set the shutdown flag: the servers stop accepting,
requests in flight finish, usage is flushed, models are unloaded, and the process exits
0 (a second SIGINT forces the exit).
"""

from __future__ import annotations

import gc
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.device import DeviceUnavailable
from inference.registration import identity_for
from inference.serve import build_server, run_servers
from inference.server import WorkerApp
from inference.serving.app import ServingApp
from inference.worker import Worker

log = logging.getLogger("inference")


class Command(BaseCommand):
    help = "Run the inference worker: hold models, serve inference, hot-swap slots."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default=None, help="TCP address (default MODELMGR_WORKER_HOST)"
        )
        parser.add_argument(
            "--port", type=int, default=None, help="TCP port (default MODELMGR_WORKER_PORT)"
        )
        parser.add_argument(
            "--socket",
            default=None,
            help="also listen on this Unix socket (default MODELMGR_WORKER_SOCKET)",
        )
        parser.add_argument("--no-tcp", action="store_true", help="listen on the Unix socket only")
        parser.add_argument(
            "--serve-host", default=None, help="serving address (default MODELMGR_SERVE_HOST)"
        )
        parser.add_argument(
            "--serve-port",
            type=int,
            default=None,
            help="public serving port for robots (default MODELMGR_SERVE_PORT)",
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="no public serving port (control API only)"
        )

    def handle(
        self,
        *args,
        host=None,
        port=None,
        socket=None,
        no_tcp=False,
        serve_host=None,
        serve_port=None,
        no_serve=False,
        **options,
    ):
        self.shutdown = False
        # The web processes run the import queue; the worker runs only the imports its
        # own /api/pull asks for (inference.serving.ollama_pull), never the queue.
        settings.MODELMGR_IMPORT_RUNNER = False
        try:
            self.worker = Worker()
        except DeviceUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.app = WorkerApp(self.worker)
        self.serving = ServingApp(self.worker, self.app.runner)
        socket_path = socket or settings.MODELMGR_WORKER_SOCKET or None
        if no_tcp and not socket_path:
            raise SystemExit("--no-tcp needs --socket (or MODELMGR_WORKER_SOCKET)")
        host = host or settings.MODELMGR_WORKER_HOST
        port = None if no_tcp else (settings.MODELMGR_WORKER_PORT if port is None else port)
        serve_host = serve_host or settings.MODELMGR_SERVE_HOST
        serve_port = settings.MODELMGR_SERVE_PORT if serve_port is None else serve_port
        self.servers = []
        try:
            where = f"{host}:{port}" if port is not None else socket_path
            self.servers.append(
                build_server(self.app, host=host, port=port, socket_path=socket_path)
            )
            if not no_serve:
                where = f"{serve_host}:{serve_port}"
                self.servers.append(build_server(self.serving, host=serve_host, port=serve_port))
        except OSError as exc:
            # A taken port is an operator's problem to fix, not a crash: one line, no trace.
            raise CommandError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        # What is loaded by now lives as long as the process: keep the collector's full
        # passes from walking it while requests wait (see modelmgr/asgi.py).
        gc.freeze()
        self.worker.start(
            identity_for(
                host=host,
                port=port,
                serve_host=serve_host,
                serve_port=None if no_serve else serve_port,
            )
        )
        where = [f"http://{host}:{port}"] if port is not None else []
        where += [f"unix:{socket_path}"] if socket_path else []
        log.info(
            "inference worker %s: control API on %s, serving %s (device %s: %s)",
            self.worker.worker_id,
            " and ".join(where),
            "off" if no_serve else f"on http://{serve_host}:{serve_port}",
            self.worker.device.device,
            self.worker.device.name,
        )
        self.serve()
        self.stop()

    def on_signal(self, signum, frame):  # noqa: ARG002
        if self.shutdown and signum == signal.SIGINT:
            for server, _ in self.servers:
                server.force_exit = True
        self.shutdown = True
        for server, _ in self.servers:
            server.should_exit = True

    def serve(self) -> None:
        """Serve until the shutdown flag: uvicorn then stops accepting and lets the
        responses in progress (streamed switches included) finish."""
        run_servers(self.servers)

    def stop(self) -> None:
        self.worker.stop()
        self.serving.close()
        self.app.close()
        log.info("inference worker %s stopped", self.worker.worker_id)
