"""/ws/events/: anonymous refused; logged-in tabs get the pages' partials for each event."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction

from modelmgr.audit import audit_record
from modelmgr.events import EVENTS_GROUP, events_publish
from modelmgr.routing import websocket_urlpatterns

# The websocket stack of modelmgr.asgi (importing that module would also start the
# import runner's background thread in the test process).
application = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))

ORIGIN = [(b"origin", b"http://localhost")]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_consumer_connections():
    """The consumer's ORM work runs in asgiref's one sync thread, whose connection would
    otherwise outlive the test (and keep PostgreSQL from dropping the test database)."""
    yield
    await database_sync_to_async(connections.close_all)()


async def logged_in(django_user_model, username="olivia", **extra):
    user = await database_sync_to_async(django_user_model.objects.create_user)(
        username, password="pw", **extra
    )
    return user, await connect_as_session(user)


async def connect_as_session(user) -> WebsocketCommunicator:
    """Connect with a real session cookie, through the AuthMiddlewareStack."""
    from django.test import Client

    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = client.cookies["sessionid"].value
    communicator = WebsocketCommunicator(
        application,
        "/ws/events/",
        headers=[*ORIGIN, (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_anonymous_socket_is_closed_with_4401():
    communicator = WebsocketCommunicator(application, "/ws/events/", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected  # accepted, then closed with an application code
    closing = await communicator.receive_output()
    assert closing == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()


async def test_foreign_origin_is_refused(django_user_model):
    communicator = WebsocketCommunicator(
        application, "/ws/events/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_switch_progress_pushes_the_stepper_and_a_log_line(django_user_model):
    _, ws = await logged_in(django_user_model)
    layer = get_channel_layer()
    await layer.group_send(
        EVENTS_GROUP,
        {
            "type": "switch.progress",
            "switch_id": "s1",
            "phase": "loading",
            "slot": "detector",
            "ref": "yolo@2",
        },
    )
    html = await ws.receive_from()
    assert '<ol class="stepper" id="run-s1-stepper" hx-swap-oob="true">' in html
    assert '<li class="done" data-phase="validating">' in html
    assert '<li class="active" data-phase="loading">' in html
    assert '<ul id="run-s1-log" hx-swap-oob="beforeend">' in html
    assert "detector · yolo@2 · loading" in html
    await ws.disconnect()


async def test_a_failed_switch_marks_the_phase_it_failed_in(django_user_model):
    _, ws = await logged_in(django_user_model)
    layer = get_channel_layer()
    await layer.group_send(
        EVENTS_GROUP,
        {"type": "switch.progress", "switch_id": "s1", "phase": "warmup", "slot": "detector"},
    )
    await ws.receive_from()
    await layer.group_send(
        EVENTS_GROUP,
        {
            "type": "switch.done",
            "switch_id": "s1",
            "kind": "switch",
            "assignments": {"detector": "olivia/yolo@2"},
            "ok": False,
            "error": "warm-up of yolo@2 failed: shape mismatch",
            "result": {},
            "duration_ms": 12.0,
        },
    )
    html = await ws.receive_from()
    assert '<li class="failed" data-phase="warming up">' in html
    assert '<div id="run-s1-result" class="switch-result">' in html and 'class="msg err"' in html
    assert "shape mismatch" in html and "previous models keep serving" in html
    assert 'data-reconnect-get="/settings" hx-swap-oob="true">' in html
    await ws.disconnect()


async def test_a_finished_switch_pushes_green_and_the_slot_cards(django_user_model):
    _, ws = await logged_in(django_user_model)
    await get_channel_layer().group_send(
        EVENTS_GROUP,
        {
            "type": "switch.done",
            "switch_id": "s2",
            "kind": "switch",
            "assignments": {"detector": "olivia/yolo@2"},
            "ok": True,
            "error": "",
            "result": {
                "detector": {
                    "ref": "yolo@2",
                    "previous": "yolo@1",
                    "load_ms": 41.5,
                    "warmup_ms": 3.2,
                    "swap_ms": 0.01,
                }
            },
            "duration_ms": 60.0,
        },
    )
    html = await ws.receive_from()
    assert 'class="msg ok"' in html and "yolo@2" in html and "(was yolo@1)" in html
    assert "load 42 ms" in html and "warm-up 3.20 ms" in html
    assert all(
        f'<li class="done" data-phase="{p}">' in html
        for p in ("validating", "loading", "warming up", "swapping", "unloading")
    )
    await ws.disconnect()


async def test_import_progress_reaches_the_owner_and_staff_only(django_user_model):
    owner, owner_ws = await logged_in(django_user_model, "olivia")
    _, other_ws = await logged_in(django_user_model, "oscar")
    _, staff_ws = await logged_in(django_user_model, "stella", is_staff=True)
    job = {
        "id": 7,
        "owner": "olivia",
        "model": "tiny",
        "version": None,
        "url": "http://h/x",
        "host": "h",
        "filename": "x.onnx",
        "state": "running",
        "bytes_done": 512,
        "bytes_total": 2048,
        "progress": 0.25,
        "speed_bps": 1024.0,
        "eta_seconds": 1.5,
        "attempts": 1,
        "error": "",
        "result": None,
        "resumable_bytes": 0,
        "can_cancel": True,
        "can_retry": False,
        "can_delete": False,
        "deleted": False,
    }
    await get_channel_layer().group_send(EVENTS_GROUP, {"type": "import.progress", "job": job})
    for ws in (owner_ws, staff_ws):
        html = await ws.receive_from()
        assert html.lstrip().startswith('<tr id="import-7"')
        assert 'aria-valuenow="25"' in html and "512\xa0bytes of 2.0\xa0KB" in html
        assert "1.0\xa0KB/s" in html and "2 s" in html
    assert await other_ws.receive_nothing()
    for ws in (owner_ws, other_ws, staff_ws):
        await ws.disconnect()


async def test_a_deleted_import_is_removed_from_the_page(django_user_model):
    _, ws = await logged_in(django_user_model)
    await get_channel_layer().group_send(
        EVENTS_GROUP,
        {"type": "import.progress", "job": {"id": 9, "owner": "olivia", "deleted": True}},
    )
    assert await ws.receive_from() == '<tr id="import-9" hx-swap-oob="delete"></tr>'
    await ws.disconnect()


def _audit(actor, target: str):
    with transaction.atomic():
        return audit_record(actor=actor, action="model.update", target_type="model", target=target)


async def test_an_audit_row_is_pushed_after_commit_as_a_row_and_a_toast(django_user_model):
    owner, ws = await logged_in(django_user_model)
    event = await database_sync_to_async(_audit)(owner, "olivia/yolo")
    html = await ws.receive_from()
    assert f'<tr id="audit-{event.pk}" data-prepend-to="#audit-rows-live">' in html
    assert '<div id="toasts" hx-swap-oob="beforeend">' in html and "olivia/yolo" in html
    await ws.disconnect()


async def test_audit_rows_of_other_users_models_are_not_pushed(django_user_model):
    owner, owner_ws = await logged_in(django_user_model, "olivia")
    _, other_ws = await logged_in(django_user_model, "oscar")
    await database_sync_to_async(_audit)(owner, "olivia/yolo")
    assert "olivia/yolo" in await owner_ws.receive_from()
    assert await other_ws.receive_nothing()
    await owner_ws.disconnect()
    await other_ws.disconnect()


async def test_tabs_of_one_user_share_one_render_and_other_users_get_their_own(
    django_user_model, monkeypatch
):
    from modelmgr.views import live

    rendered_for = []
    render_audit = live.render_audit

    def counting_render_audit(user, event_id):
        rendered_for.append(user.username)
        return render_audit(user, event_id)

    monkeypatch.setattr(live, "render_audit", counting_render_audit)
    staff, first_tab = await logged_in(django_user_model, "stella", is_staff=True)
    second_tab = await connect_as_session(staff)
    _, other_staff_tab = await logged_in(django_user_model, "sam", is_staff=True)
    event = await database_sync_to_async(_audit)(staff, "stella/yolo")
    pushed = [await ws.receive_from() for ws in (first_tab, second_tab, other_staff_tab)]
    assert all(f'id="audit-{event.pk}"' in html for html in pushed)
    assert pushed[0] == pushed[1]
    assert sorted(rendered_for) == ["sam", "stella"]
    for ws in (first_tab, second_tab, other_staff_tab):
        await ws.disconnect()


async def test_events_published_from_a_thread_reach_the_socket(django_user_model):
    """Services publish from worker threads; the message must wake the consumer."""
    _, ws = await logged_in(django_user_model)
    await sync_to_async(events_publish, thread_sensitive=False)(
        "switch.progress", {"phase": "swapping", "slot": "pose"}
    )
    html = await ws.receive_from()
    assert '<li class="active" data-phase="swapping">' in html
    await ws.disconnect()


async def test_anything_a_browser_sends_is_ignored(django_user_model):
    _, ws = await logged_in(django_user_model)
    await ws.send_to(text_data="hello")
    assert await ws.receive_nothing()
    await ws.disconnect()
