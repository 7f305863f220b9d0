"""Real-browser tests: headless Chromium (Debian's, never `playwright install`) against the
app served for real: the daphne web process and an inference worker, both subprocesses
on this test's database and artifact store (see tests/workerproc.py for the recipe).

Every test here is transactional (rows must be committed for the subprocesses to see
them); the processes stop before the test's tables are flushed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.webproc import WebProcess
from tests.workerproc import ROOT, WorkerProcess, start_worker, worker_environment

CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMIUM = next((path for path in CHROMIUM_PATHS if os.path.exists(path)), None)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The suite saves its pictures under var/ so that a test run leaves the tree clean;
# `make screenshots` points this at docs/screenshots to refresh the README's pictures.
SCREENSHOTS = Path(os.environ.get("MODELMGR_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")
# Generous waits for things another process does (a switch, a download): a deadline only
# turns a hang into a failure, it is not a timing assertion.
WAIT_MS = 30_000


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            if CHROMIUM is None and os.environ.get("CI") == "true":
                raise pytest.UsageError(
                    "CI=true and Chromium is missing: the browser tests must run in CI "
                    "(`make test` installs Debian's chromium through `make browser`)"
                )
            if CHROMIUM is None:
                item.add_marker(
                    pytest.mark.skip(
                        reason="Chromium is not installed (/usr/bin/chromium): `make browser` "
                        "(apt-get install chromium, as root) installs it"
                    )
                )


@pytest.fixture(autouse=True)
def _sync_orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an event loop running in this thread, which makes
    Django refuse ORM calls from the test itself; the test is plain sync code."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@dataclass
class Stack:
    url: str
    web: WebProcess
    worker: WorkerProcess
    gate_dir: Path

    def sync(self) -> None:
        """Have the worker converge to the rows the test has just committed."""
        with self.worker.client() as client:
            assert client.post("/reconcile").status_code == 200
        self.worker.wait_ready()

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture
def stack(transactional_db, settings, tmp_path):
    """The worker and the web process on this test's database; stopped before teardown."""
    from tests.inference.support import GATE_RUNTIMES

    gate_dir = tmp_path / "gates"
    gate_dir.mkdir()
    shared = {
        # The test-only "gate" runtime lets a test hold a load to watch it live.
        "MODELMGR_WORKER_RUNTIMES": ",".join(GATE_RUNTIMES),
        "MODELMGR_STATS_FLUSH_S": "0.5",
        "MODELMGR_SWITCH_GRACE_S": "0",
    }
    worker = start_worker(env=shared)
    web = None
    try:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        web = WebProcess(
            env={
                **worker_environment(),
                **shared,
                "MODELMGR_WORKER_URL": worker.url,
                "MODELMGR_IMPORT_RUNNER": "true",
                "MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1:*",
                "MODELMGR_IMPORT_PROGRESS_INTERVAL": "0",
                "MODELMGR_IMPORT_POLL_SECONDS": "0.5",
                "MODELMGR_STREAM_CHUNK_BYTES": "4096",
            }
        ).start()
        yield Stack(url=web.url, web=web, worker=worker, gate_dir=gate_dir)
    finally:
        if web is not None:
            web.stop()
        worker.stop()


@pytest.fixture
def browser():
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            # ORM work the test did while Playwright ran has its own connections (see
            # _sync_orm_beside_playwright); close them while that context still exists.
            connections.close_all()
            chromium.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=stack.url)
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def log_in(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/settings")
    # The live indicator turns on once the page's /ws/events/ socket is open.
    page.wait_for_selector("#live-dot.on")


def screenshot(page, name: str, *, full_page: bool = True, hide_toasts: bool = False) -> Path:
    """Save SCREENSHOTS/<name>; toasts float over content in a full-page picture."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(
        path=str(path),
        full_page=full_page,
        style="#toasts { display: none; }" if hide_toasts else None,
    )
    return path
