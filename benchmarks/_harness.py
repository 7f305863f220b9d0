"""Shared plumbing for the standalone benchmarks: a temporary deployment on free ports.

Each benchmark starts the processes it needs with a temporary SQLite database and
artifact store, and stops them at the end, so it runs with nothing but `make setup`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Deployment:
    """A throwaway modelmgr: temp var dir, migrated SQLite, a user with a token."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="modelmgr-bench-"))
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
            "MODELMGR_VAR_DIR": str(self.tmp / "var"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("DATABASE_URL", None)
        self.env.pop("REDIS_URL", None)
        self.processes: list[subprocess.Popen] = []
        self.token = ""

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def prepare(self) -> None:
        self.manage("migrate", "--noinput")
        script = (
            "import django; django.setup();"
            "from django.contrib.auth import get_user_model;"
            "from modelmgr.models import ApiToken;"
            "u=get_user_model().objects.create_superuser('bench','b@x','bench');"
            "raw=ApiToken.generate();"
            "ApiToken.objects.create(user=u,name='bench',token_hash=ApiToken.hash_token(raw),"
            "scopes=['read','write']);print(raw)"
        )
        out = subprocess.run(
            [PYTHON, "-c", script],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.token = out.stdout.strip().splitlines()[-1]

    def start(self, argv: list[str], ready_url: str, timeout: float = 60) -> subprocess.Popen:
        log = open(self.tmp / f"proc-{len(self.processes)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv} exited early; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1).status_code < 500:
                    return proc
            time.sleep(0.2)
        raise RuntimeError(f"{argv} did not answer at {ready_url} within {timeout}s")

    def start_web(self, port: int) -> subprocess.Popen:
        return self.start(
            [
                PYTHON,
                "-m",
                "modelmgr.web_server",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "modelmgr.asgi:application",
            ],
            f"http://127.0.0.1:{port}/api/v1/health",
        )

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def deployment() -> Iterator[Deployment]:
    dep = Deployment()
    try:
        dep.prepare()
        yield dep
    finally:
        dep.stop()


class PeakRss:
    """Samples a process's RSS (with its children) in a thread; reports the peak."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        procs = [self.proc, *self.proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(title)
    print("-" * (width + 24))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 24))


def emit(figures: dict) -> None:
    """The very last line of every benchmark: one JSON object of its figures."""
    print(json.dumps(figures), flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class ServingDeployment(Deployment):
    """A Deployment with a worker and a web process, and helpers to register models."""

    def __init__(self) -> None:
        super().__init__()
        self.worker_port = free_port()
        self.serve_port = free_port()  # the worker's public serving port (8002 may be taken)
        self.web_port = free_port()
        self.read_token = ""  # a read-only token, as a robot on the serving port holds
        self.env["MODELMGR_WORKER_URL"] = f"http://127.0.0.1:{self.worker_port}"
        self.env.setdefault("MODELMGR_RECONCILE_INTERVAL_S", "30")
        self.worker: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}"

    @property
    def serve_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def prepare(self) -> None:
        super().prepare()
        self.read_token = self.manage("create_token", "bench", "--name", "robot").strip()

    def register(self, path: Path, *, name: str, version: str, task: str = "classifier") -> None:
        self.manage(
            "import_model",
            str(path),
            "--name",
            name,
            "--version",
            version,
            "--owner",
            "bench",
            "--task",
            task,
        )

    def start_all(self) -> None:
        self.worker = self.start(
            [
                PYTHON,
                "manage.py",
                "runinference",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.worker_port),
                "--serve-host",
                "127.0.0.1",
                "--serve-port",
                str(self.serve_port),
            ],
            f"{self.worker_url}/live",
        )
        self.wait_serving()
        self.web = self.start_web(self.web_port)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.worker_url}/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("worker never became ready")

    def wait_serving(self, timeout: float = 30) -> None:
        """The serving port binds beside the control API; wait until it answers too."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.serve_url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the worker's serving port {self.serve_url} never answered")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def read_auth(self) -> dict[str, str]:
        """The read-only token's header, for the serving port."""
        return {"Authorization": f"Bearer {self.read_token}"}


@contextlib.contextmanager
def serving_deployment() -> Iterator[ServingDeployment]:
    dep = ServingDeployment()
    try:
        dep.prepare()
        yield dep
    finally:
        dep.stop()
