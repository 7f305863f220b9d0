"""With Redis, live events cross processes: a browser's socket on one web process gets
what happens in another (a second web process, a command, a thread in any process).

Real processes end to end: two ``modelmgr.web_server`` subprocesses on this test's
database, a real WebSocket client (``websockets``, installed with uvicorn[standard]) with
a real session cookie, and this process's own channels_redis layer. Nothing is mocked.
Skipped without REDIS_URL: the in-memory layer cannot cross processes, by design. The
PostgreSQL + Redis pass of `make test` sets it.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest
from django.db import transaction
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from modelmgr.audit import audit_record
from tests.conftest import make_token
from tests.webproc import WebProcess
from tests.workerproc import worker_environment

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL"),
        reason="REDIS_URL is unset: events cross processes only through Redis",
    ),
]
WAIT_S = 30  # turns a hang into a failure; not a timing assertion


@pytest.fixture
def web_pair():
    """Two web processes on this test's database and Redis, as a scaled-out deployment."""
    env = {
        **worker_environment(),
        "REDIS_URL": os.environ["REDIS_URL"],
        # Only the events this test causes: no import runner, no worker-state relay.
        "MODELMGR_IMPORT_RUNNER": "false",
        "MODELMGR_WORKER_EVENTS_RELAY": "false",
    }
    started: list[WebProcess] = []
    try:
        for _ in range(2):
            started.append(WebProcess(env=env).start())
        yield started
    finally:
        for web in started:
            web.stop()


def _socket(web: WebProcess, cookie: str | None = None):
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else None
    return connect(
        web.url.replace("http://", "ws://") + "/ws/events/",
        origin=web.url,
        additional_headers=headers,
        proxy=None,
        open_timeout=WAIT_S,
    )


def _message_containing(ws, text: str) -> str:
    """The first pushed message with ``text`` (others, e.g. from a parallel run, pass)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        html = ws.recv(timeout=max(deadline - time.monotonic(), 0.1))
        if text in html:
            return html


def test_an_event_from_another_process_reaches_a_socket_on_this_web_process(
    staff, web_pair, settings
):
    from channels.layers import get_channel_layer

    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"
    here, there = web_pair

    # The real server closes an anonymous socket with 4401 (not a refused handshake).
    with _socket(here) as anonymous, pytest.raises(ConnectionClosed) as closed:
        anonymous.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    browser = Client()
    browser.force_login(staff)  # a session row the web processes read
    with _socket(here, browser.cookies["sessionid"].value) as ws:
        # 1. A robot's change through the API of the OTHER web process.
        with httpx.Client(
            base_url=there.url,
            timeout=WAIT_S,
            headers={"Authorization": f"Bearer {make_token(staff)}"},
        ) as api:
            created = api.post(
                "/api/v1/models", json={"name": "made-elsewhere", "task": "detector"}
            )
            assert created.status_code == 201, created.text
        html = _message_containing(ws, "made-elsewhere")
        assert "<code>model.create</code>" in html and 'data-prepend-to="#audit-rows-live"' in html

        # 2. A change in a process that serves no sockets at all (this one, as a command
        # or a background thread would): published on commit through its own layer.
        with transaction.atomic():
            row = audit_record(
                actor=staff, action="model.update", target_type="model", target="changed-here"
            )
        html = _message_containing(ws, "changed-here")
        assert f'id="audit-{row.pk}"' in html
