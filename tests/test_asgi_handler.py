"""The web process's ASGI handler (modelmgr.asgi_handler): a sync view's request runs
start to end on one lane thread; streamed answers still arrive whole; async views keep
Django's async path."""

from __future__ import annotations

import threading

import pytest
from channels.testing import HttpCommunicator
from django.core import signals

from modelmgr.asgi_handler import BodyFileASGIHandler
from tests.conftest import make_token
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def handler():
    handler = BodyFileASGIHandler()
    yield handler
    handler.shutdown()  # the lanes' database connections, or the test database stays busy


async def get(handler, path: str, headers=()) -> dict:
    headers = [(b"host", b"testserver"), *headers]
    return await HttpCommunicator(handler, "GET", path, headers=headers).get_response(timeout=20)


def scope_for(path: str) -> dict:
    return {"type": "http", "path": path, "root_path": ""}


def test_sync_and_async_views_are_told_apart(handler):
    assert not handler._view_is_async(scope_for("/api/v1/health"))
    assert not handler._view_is_async(scope_for("/models"))
    assert not handler._view_is_async(scope_for("/no/such/page"))
    assert handler._view_is_async(scope_for("/api/v1/slots/detector/predict"))


async def test_a_sync_request_runs_on_one_lane_thread_from_start_to_finish(handler):
    threads: list[tuple[str, str]] = []

    def started(**kwargs):
        threads.append(("started", threading.current_thread().name))

    def finished(**kwargs):
        threads.append(("finished", threading.current_thread().name))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        response = await get(handler, "/api/v1/health")
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert response["status"] == 200 and b'"ok"' in response["body"]
    assert [event for event, _ in threads] == ["started", "finished"]
    names = {name for _, name in threads}
    assert len(names) == 1 and names.pop().startswith("django-lane-")


async def test_an_unknown_api_path_is_a_json_404(handler):
    response = await get(handler, "/api/v1/nowhere")
    assert response["status"] == 404 and b"no API endpoint" in response["body"]


async def test_a_streamed_download_arrives_whole(handler, owner):
    from asgiref.sync import sync_to_async

    @sync_to_async
    def prepare() -> str:
        from django.db import connections

        make_version(make_model(owner, "det"), "1", files={"model.bin": b"x" * 300_000})
        token = make_token(owner)
        connections.close_all()  # this thread's connection would keep the test database busy
        return token

    token = await prepare()
    response = await get(
        handler,
        "/api/v1/models/det/versions/1/files/model.bin",
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )
    assert response["status"] == 200
    assert response["body"] == b"x" * 300_000
