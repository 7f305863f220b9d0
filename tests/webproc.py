"""The real web process (``python -m modelmgr.web_server``, daphne with our streaming fixes)
as a subprocess on a free port, for tests that need real sockets: browsers, slow clients."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.workerproc import ROOT, free_port

START_TIMEOUT_S = 60


class WebProcess:
    """``python -m modelmgr.web_server`` (the daphne wrapper) on a free port."""

    def __init__(self, *, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="modelmgr-web-"))
        self.log_path = self.tmp / "web.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "SQLITE_PATH", "DJANGO_ALLOW_ASYNC_UNSAFE")
        }
        self.env.update({"MODELMGR_VAR_DIR": str(self.tmp / "var"), **env})
        self.proc: subprocess.Popen | None = None

    def start(self) -> WebProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelmgr.web_server",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "modelmgr.asgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited:\n{self.logs()[-3000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the web server did not start:\n{self.logs()[-3000:]}")

    def restart(self) -> WebProcess:
        """Stop the process (keeping its files) and start it again on the same port:
        what a deploy or a crash does to the browsers connected to it."""
        self._terminate()
        return self.start()

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
