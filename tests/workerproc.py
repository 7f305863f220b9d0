"""Start and stop a real inference worker (`manage.py runinference`) from a test.

    from tests.workerproc import start_worker

    @pytest.mark.worker
    @pytest.mark.django_db(transaction=True)
    def test_robot_gets_a_prediction(...):
        ...create rows...                      # committed: the worker reads them
        with start_worker(env={"MODELMGR_SWITCH_GRACE_S": "0"}) as worker:
            worker.wait_ready()
            r = httpx.post(f"{worker.url}/infer/detector", json={"inputs": {...}})

``start_worker`` picks free ports (or takes ``port``) for the private control API and the
public serving port, waits for /live (not /ready: a test may want to watch the restore),
and stops the worker when the ``with`` ends. ``WorkerProcess`` has ``.url`` (control
API), ``.serve_url`` (serving port), ``.wait_ready()``, ``.client()``, ``.kill()`` (SIGKILL),
``.terminate()`` (SIGTERM, returns the exit status), ``.restart()`` and ``.logs()``.

How the subprocess sees the test's database and files (the reliable recipe):

1. The test is ``@pytest.mark.django_db(transaction=True)``: rows are committed, so
   another process sees them (a plain ``django_db`` test's rows sit in a transaction
   that is rolled back and invisible to the worker).
2. SQLite: pytest-django's test database is in memory by default, which no other process
   can open. tests/conftest.py overrides ``django_db_modify_db_settings`` to put it in a
   file under the session's tmp dir (unique per run and per xdist worker);
   ``worker_environment()`` passes that file as SQLITE_PATH.
3. PostgreSQL: the test database is ``test_<NAME>`` (``test_test``, ``_gwN`` under
   xdist); ``worker_environment()`` passes a DATABASE_URL naming it.
4. Files: the test's artifact store (``settings.ARTIFACT_ROOT``, set per test by the
   ``isolated_storage`` fixture) as MODELMGR_ARTIFACT_ROOT; the worker's var dir and
   model cache go to a fresh temp folder.
5. Stop the worker before the test ends (the ``with`` does): a transactional test
   truncates the tables at teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_environment() -> dict[str, str]:
    """The variables that point a subprocess at this test's database and artifact store."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    test_name = (db.get("TEST") or {}).get("NAME") or f"test_{db['NAME']}"
    if db["NAME"] != test_name and not str(db["NAME"]).startswith("test_"):
        raise RuntimeError(
            "start_worker needs the test database: mark the test "
            "@pytest.mark.django_db(transaction=True)"
        )
    if connection.in_atomic_block:
        raise RuntimeError(
            "this test's rows sit in a transaction the worker cannot see: "
            "use @pytest.mark.django_db(transaction=True)"
        )
    env = {
        "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
        "PYTHONUNBUFFERED": "1",
        "MODELMGR_ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
        "MODELMGR_STAGING_ROOT": str(settings.STAGING_ROOT),
    }
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError(
                "the SQLite test database is in memory, which a worker subprocess cannot "
                "open; tests/conftest.py's django_db_modify_db_settings must give it a file"
            )
        env["SQLITE_PATH"] = name
    else:
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        env["DATABASE_URL"] = f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"
    return env


class WorkerProcess:
    def __init__(self, *, env: dict[str, str], port: int, timeout: float):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.serve_port = free_port()
        self.serve_url = f"http://127.0.0.1:{self.serve_port}"
        self.timeout = timeout
        self.tmp = Path(tempfile.mkdtemp(prefix="modelmgr-worker-"))
        self.log_path = self.tmp / "worker.log"
        self.env = {
            **os.environ,
            "MODELMGR_VAR_DIR": str(self.tmp / "var"),
            "MODELMGR_WORKER_CACHE_DIR": str(self.tmp / "cache"),
            **env,
        }
        for name in ("DATABASE_URL", "SQLITE_PATH"):
            if name not in env:
                self.env.pop(name, None)
        self.proc: subprocess.Popen | None = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runinference",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--serve-port",
                str(self.serve_port),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_for("/live", ok=(200,), timeout=self.timeout)
        return self

    def wait_for(self, path: str, *, ok=(200,), timeout: float | None = None) -> httpx.Response:
        deadline = time.monotonic() + (timeout or self.timeout)
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"the worker exited with status {self.proc.returncode}:\n{self.logs()[-3000:]}"
                )
            try:
                response = httpx.get(self.url + path, timeout=2)
                if response.status_code in ok:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise RuntimeError(
            f"the worker did not answer {path} in time (last: {last}):\n{self.logs()[-3000:]}"
        )

    def wait_ready(self, timeout: float | None = None) -> None:
        self.wait_for("/ready", timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit status (SIGKILL when it does not stop)."""
        if not self.running:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(
                f"the worker ignored SIGTERM for {timeout}s:\n{self.logs()[-3000:]}"
            ) from None

    def restart(self) -> WorkerProcess:
        """Start again on the same port (after kill/terminate, or stopping it first)."""
        if self.running:
            self.terminate()
        return self.start()

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.terminate(timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 60), **kwargs)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_worker(
    *, env: dict | None = None, port: int | None = None, timeout: float = 60
) -> WorkerProcess:
    """Start ``manage.py runinference`` on this test's database and artifact store.

    ``env`` adds or overrides variables (e.g. MODELMGR_SWITCH_GRACE_S); it wins over
    ``worker_environment()``. Use it as a context manager so the worker always stops.
    """
    merged = {**worker_environment(), **{k: str(v) for k, v in (env or {}).items()}}
    # A port free_port() found free can be taken by another process before the worker
    # binds it (the suite starts many servers); ports we chose are chosen again.
    attempts = 1 if port else 3
    for attempt in range(attempts):
        worker = WorkerProcess(env=merged, port=port or free_port(), timeout=timeout)
        try:
            return worker.start()
        except RuntimeError:
            lost_race = "Address already in use" in worker.logs()
            worker.stop()
            if not lost_race or attempt == attempts - 1:
                raise
        except BaseException:
            worker.stop()
            raise
    raise AssertionError("unreachable")
