"""The public API when the real worker is down: killed (SIGKILL: connections refused) or
hung (SIGSTOP: the kernel still accepts connections, nobody answers).

A prediction is a quick 503 naming the worker and the cause, never a hang: at once when
the worker is gone, after MODELMGR_PREDICT_TIMEOUT_S when it is silent. That holds for
the ninja operation through the test client and with a bearer token through the real ASGI
application. /api/v1/status
is documented as always 200: it says the worker is unreachable and why, as quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from modelmgr.asgi import application
from tests.deploy.live import live_worker, predict, served_by
from tests.inference.support import make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUICK_S = 3.0  # generous for a busy machine; a hang would take the 60 s default
HUNG_TIMEOUT_S = 2
BODY = json.dumps({"inputs": {"x": [[1.0, 2.0, 3.0, 4.0]]}}).encode()


@pytest.fixture
def clf_slot(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    return make_slot("clf", version, task="classifier")


@pytest.fixture
def robot(robot_token) -> Iterator:
    """POST predict with the robot's bearer token through the ASGI application, returning
    (response, seconds)."""

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.post(
                "/api/v1/slots/clf/predict",
                content=BODY,
                headers={"authorization": f"Bearer {robot_token}"},
            )

    yield lambda: timed(lambda: asyncio.run(post()))
    # The token lookup ran in asgiref's thread: close its connection (PostgreSQL teardown).
    asyncio.run(sync_to_async(connections.close_all)())


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def assert_unreachable(api, url: str, cause: str, limit: float) -> None:
    response, took = timed(lambda: api.get("/api/v1/status"))
    assert response.status_code == 200 and took < limit, (response.status_code, took)
    worker = response.json()["worker"]
    assert worker["reachable"] is False and worker["status"] is None
    assert url in worker["error"] and cause in worker["error"], worker["error"]


def test_killed_worker_is_a_quick_503_naming_it(api, settings, clf_slot, robot):
    with live_worker(settings) as worker:
        assert served_by(api, "clf") == "clf@1"
        worker.kill()

        response, took = timed(lambda: predict(api, "clf"))
        assert response.status_code == 503 and took < QUICK_S, (response.content, took)
        detail = response.json()["detail"]
        assert worker.url in detail and "cannot connect" in detail, detail
        assert response["Retry-After"] == "5"

        response, took = robot()
        assert response.status_code == 503 and took < QUICK_S, (response.content, took)
        assert response.headers["retry-after"] == "5"
        assert worker.url in response.json()["detail"]
        assert "cannot connect" in response.json()["detail"]

        assert_unreachable(api, worker.url, "cannot connect", QUICK_S)


def test_hung_worker_is_a_503_after_the_predict_timeout_naming_it(api, settings, clf_slot, robot):
    settings.MODELMGR_PREDICT_TIMEOUT_S = HUNG_TIMEOUT_S
    settings.MODELMGR_WORKER_TIMEOUT_S = HUNG_TIMEOUT_S  # /status asks it too
    limit = HUNG_TIMEOUT_S + QUICK_S
    cause = f"no answer within {HUNG_TIMEOUT_S:g} s"
    with live_worker(settings) as worker:
        assert served_by(api, "clf") == "clf@1"
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            response, took = timed(lambda: predict(api, "clf"))
            assert response.status_code == 503 and took < limit, (response.content, took)
            detail = response.json()["detail"]
            assert worker.url in detail and cause in detail, detail

            response, took = robot()
            assert response.status_code == 503 and took < limit, (response.content, took)
            assert worker.url in response.json()["detail"]
            assert cause in response.json()["detail"]

            assert_unreachable(api, worker.url, cause, limit)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        assert served_by(api, "clf") == "clf@1"  # it carries on once resumed
