"""Start the web server (daphne) and the inference worker side by side; Ctrl-C stops both.

The worker listens twice: its private control API (web port + 1) and its public serving
port for robots (web port + 2, or MODELMGR_SERVE_HOST/PORT). It is supervised
(modelmgr.supervise): when it dies it is restarted with backoff, and the web keeps serving
meanwhile; the web process dying stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from modelmgr.ports import (
    Listener,
    first_taken,
    serve_listener,
    worker_listener,
    worker_url_for,
)
from modelmgr.supervise import RestartPolicy, Supervised


class Command(BaseCommand):
    help = "Run the web process and the inference worker together (what `make run` starts)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="start only the web process")

    def handle(self, *args, host: str, port: int, no_worker: bool, **options):
        worker_url = worker_url_for(port)
        worker = worker_listener(worker_url)
        serving = serve_listener(port)
        listeners = [Listener("web", host, port)] + ([] if no_worker else [worker, serving])
        taken = first_taken(listeners)
        if taken:
            # One clear line and a distinct status, not an OSError traceback from a child.
            self.stderr.write(f"modelmgr cannot start: {taken}")
            sys.exit(2)
        env = {**os.environ, "MODELMGR_WORKER_URL": worker_url}
        python = sys.executable
        commands = {
            "web": [
                python,
                "-m",
                "modelmgr.web_server",
                "-b",
                host,
                "-p",
                str(port),
                "modelmgr.asgi:application",
            ],
        }
        if not no_worker:
            commands["worker"] = [
                python,
                "manage.py",
                "runinference",
                "--host",
                worker.host,
                "--port",
                str(worker.port),
                "--serve-host",
                serving.host,
                "--serve-port",
                str(serving.port),
            ]
        web = subprocess.Popen(commands["web"], env=env)
        processes = {"web": web}
        supervised = None
        if not no_worker:
            supervised = Supervised(
                "worker",
                commands["worker"],
                env=env,
                policy=RestartPolicy(
                    max_restarts=settings.MODELMGR_WORKER_MAX_RESTARTS,
                    window_s=settings.MODELMGR_WORKER_RESTART_WINDOW_S,
                    backoff_s=settings.MODELMGR_WORKER_RESTART_BACKOFF_S,
                    backoff_max_s=settings.MODELMGR_WORKER_RESTART_BACKOFF_MAX_S,
                ),
                say=lambda line: self.stderr.write(line),
            )
            supervised.start()
        self.stdout.write(
            self.style.SUCCESS(
                f"modelmgr is starting: http://{host}:{port}/settings  (API docs: /api/v1/docs, "
                f"admin: /admin/)"
                + (
                    ""
                    if no_worker
                    else f"; robots: http://{serving.host}:{serving.port} (serving port: "
                    f"/api/v1/slots/{{slot}}/predict, /v2); worker control at {worker_url}"
                )
            )
        )
        stopping = False

        def stop(signum, frame):  # noqa: ARG001
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            while not stopping:
                code = web.poll()
                if code is not None:
                    self.stderr.write(f"web exited with status {code}; stopping the rest")
                    exit_code = code or 1
                    stopping = True
                if supervised is not None and not stopping:
                    supervised.poll()
                time.sleep(0.2)
        finally:
            if supervised is not None and supervised.proc is not None:
                processes["worker"] = supervised.proc
            for proc in processes.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for proc in processes.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.stdout.write("modelmgr stopped")
        if exit_code:
            sys.exit(exit_code)
