"""`make run` as a new user meets it: migrate, bootstrap, then `manage.py runall` starts
the web process and the worker; a robot predicts through the API at once; Ctrl-C stops
both; a dying worker is restarted (the web serves meanwhile), a crash loop given up.

These run the real commands as subprocesses on the embedded default (SQLite in a
temporary var dir), whatever database the rest of the suite uses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.workerproc import ROOT, free_port

pytestmark = pytest.mark.worker

START_TIMEOUT_S = 90


class MakeRun:
    """The steps of `make run` after `make setup`, in a throwaway var dir."""

    def __init__(self, env: dict[str, str] | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="modelmgr-run-"))
        # The worker's port is not given: runall derives it from the web port (+1).
        self.web_port = _free_pair()
        self.worker_port = self.web_port + 1
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "DJANGO_ALLOW_ASYNC_UNSAFE")
            and not key.startswith("MODELMGR_")
        }
        self.env.update(
            {
                "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
                "MODELMGR_VAR_DIR": str(self.tmp / "var"),
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            }
        )
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.log_path = self.tmp / "runall.log"
        self.proc: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def start(self) -> MakeRun:
        self.manage("migrate", "--noinput")
        self.manage("bootstrap")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "runall",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.web_port),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logs()
            try:
                web = httpx.get(f"{self.web_url}/api/v1/health", timeout=2)
                worker = httpx.get(f"http://127.0.0.1:{self.worker_port}/ready", timeout=2)
                if web.status_code == 200 and worker.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"web and worker not ready in {START_TIMEOUT_S}s:\n{self.logs()}")

    def children(self) -> dict[str, psutil.Process]:
        """The web and worker processes runall started, by role."""
        found = {}
        for child in psutil.Process(self.proc.pid).children():
            cmdline = " ".join(child.cmdline())
            found["web" if "modelmgr.web_server" in cmdline else "worker"] = child
        return found

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with_children = [psutil.Process(self.proc.pid), *self.children().values()]
            for proc in with_children:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _free_pair() -> int:
    """A free port whose next port is free too (the web's and the worker's)."""
    from modelmgr.ports import port_taken

    while True:
        port = free_port()
        if port < 65535 and not port_taken("127.0.0.1", port + 1):
            return port


@pytest.fixture
def make_run():
    run = MakeRun()
    try:
        yield run.start()
    finally:
        run.stop()


def _gone_within(procs, seconds: float) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=seconds)
    return not alive


def test_a_new_user_predicts_and_ctrl_c_stops_both(make_run):
    make_run.wait_ready()
    token = make_run.manage("create_token", "admin", "--name", "robot").strip().splitlines()[-1]
    answer = httpx.post(
        f"{make_run.web_url}/api/v1/slots/policy/predict",
        headers={"Authorization": f"Bearer {token}"},
        json={"inputs": {"obs": [[0.0] * 12]}},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "walk-policy@1"
    assert len(answer.json()["outputs"]["output"][0]) == 4
    # Robots use the worker's serving port (the web port + 2), printed at start.
    serve_url = f"http://127.0.0.1:{make_run.web_port + 2}"
    assert f"robots: {serve_url}" in make_run.logs()
    direct = httpx.post(
        f"{serve_url}/api/v1/slots/policy/predict",
        headers={"Authorization": f"Bearer {token}"},
        json={"inputs": {"obs": [[0.0] * 12]}},
        timeout=30,
    )
    assert direct.status_code == 200, direct.text
    assert direct.json()["outputs"] == answer.json()["outputs"]

    children = make_run.children()
    assert set(children) == {"web", "worker"}
    make_run.proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    assert make_run.proc.wait(timeout=30) == 0
    assert _gone_within(list(children.values()), 5), "runall left a process running"
    assert "modelmgr stopped" in make_run.logs()


@pytest.fixture
def run_with():
    runs = []

    def start(**env) -> MakeRun:
        runs.append(MakeRun({k: str(v) for k, v in env.items()}))
        return runs[-1].start()

    yield start
    for run in runs:
        run.stop()


def _served(run: MakeRun) -> dict[str, str]:
    status = httpx.get(f"http://127.0.0.1:{run.worker_port}/status", timeout=5).json()
    return {slot: entry["ref"] for slot, entry in status["slots"].items()}


def test_a_killed_worker_is_restarted_and_the_web_serves_meanwhile(run_with):
    """SIGKILL the worker: the web keeps answering pages and the API, predict is a 503
    with Retry-After, and after the backoff the worker is back serving the versions
    the database names, with no manual step."""
    run = run_with(MODELMGR_WORKER_RESTART_BACKOFF_S=2)
    run.wait_ready()
    token = run.manage("create_token", "admin", "--name", "robot").strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    body = {"inputs": {"obs": [[0.0] * 12]}}
    predict_url = f"{run.web_url}/api/v1/slots/policy/predict"
    assert httpx.post(predict_url, headers=auth, json=body, timeout=30).status_code == 200
    before = _served(run)
    old = run.children()["worker"]
    old.kill()
    old.wait(timeout=10)

    outage = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert run.proc.poll() is None, run.logs()
        assert httpx.get(f"{run.web_url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{run.web_url}/api/v1/models", headers=auth, timeout=5).status_code == 200
        answer = httpx.post(predict_url, headers=auth, json=body, timeout=30)
        if answer.status_code == 200:
            break
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] and answer.json()["detail"]
        outage.append(answer)
        time.sleep(0.2)
    else:
        raise AssertionError(f"the worker did not come back:\n{run.logs()}")
    assert outage, "predict never answered 503 while the worker was down"
    assert answer.json()["model"] == "walk-policy@1"
    assert run.children()["worker"].pid != old.pid
    assert _served(run) == before
    assert "worker exited with status -9; restarting it in 2 s" in run.log_path.read_text()


def test_a_crash_loop_is_given_up_in_one_line_and_the_web_stays_up(run_with):
    run = run_with(
        MODELMGR_WORKER_DEVICE="bogus",  # the worker exits at once, every time
        MODELMGR_WORKER_MAX_RESTARTS=2,
        MODELMGR_WORKER_RESTART_BACKOFF_S=0.1,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while "not restarting it again" not in run.log_path.read_text():
        assert time.monotonic() < deadline, run.logs()
        assert run.proc.poll() is None, run.logs()
        time.sleep(0.2)
    log = run.log_path.read_text()
    gave_up = [line for line in log.splitlines() if "not restarting" in line]
    assert len(gave_up) == 1
    assert "after 2 restarts" in gave_up[0] and "MODELMGR_WORKER_MAX_RESTARTS=2" in gave_up[0]
    assert log.count("MODELMGR_WORKER_DEVICE='bogus'") == 3  # the cause, each time
    while True:  # the web may still be starting
        try:
            if httpx.get(f"{run.web_url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, run.logs()
        time.sleep(0.2)
    ready = httpx.get(f"{run.web_url}/readyz", timeout=5)
    assert ready.status_code == 503 and "worker" in ready.json()["detail"]
    assert run.proc.poll() is None


def test_the_worker_serves_the_slots_bootstrap_assigned(make_run):
    make_run.wait_ready()
    status = httpx.get(f"http://127.0.0.1:{make_run.worker_port}/status", timeout=5).json()
    served = {slot: entry["ref"] for slot, entry in status["slots"].items()}
    assert served == {
        "detector": "tiny-detector@1.0",
        "policy": "walk-policy@1",
        "classifier": "tiny-classifier@1",
    }, json.dumps(status)[:2000]


def _hold_port(port: int) -> subprocess.Popen:
    """Another program listening on `port` (a second modelmgr, say)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
            "print('listening', flush=True); time.sleep(120)",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "listening"
    return holder


def _runall(port: int, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "runall", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _plain_env(tmp_path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH")
        and not key.startswith("MODELMGR_")
    }
    env.update({"DJANGO_SETTINGS_MODULE": "modelmgr.settings", "MODELMGR_VAR_DIR": str(tmp_path)})
    return env


def test_a_taken_web_port_is_named_in_one_line_and_nothing_starts(tmp_path):
    port = free_port()
    holder = _hold_port(port)
    try:
        done = _runall(port, _plain_env(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"port {port} on 127.0.0.1 is already in use (wanted by the web process)" in (
        done.stderr
    )
    assert "modelmgr is starting" not in done.stdout


def test_the_worker_port_follows_the_web_port(tmp_path):
    """`make run PORT=N` moves the worker to N+1: with N+1 taken, runall says so (it
    would otherwise have bound the fixed 8001 and crashed later)."""
    port = free_port()
    holder = _hold_port(port + 1)
    try:
        done = _runall(port, _plain_env(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"port {port + 1} on 127.0.0.1 is already in use (wanted by the worker process)" in (
        done.stderr
    )


def test_the_serving_port_follows_the_web_port(tmp_path):
    """The worker's public serving port is the web port + 2 unless MODELMGR_SERVE_PORT."""
    port = free_port()
    holder = _hold_port(port + 2)
    try:
        done = _runall(port, _plain_env(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2, done.stderr
    assert f"port {port + 2} on 127.0.0.1 is already in use (wanted by the serving process)" in (
        done.stderr
    )
    assert "MODELMGR_SERVE_PORT" in done.stderr
