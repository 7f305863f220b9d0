"""Pinning a version (keep it loaded in the worker): desired state, audited, then a nudge."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelmgr.exceptions import NotDeployable
from modelmgr.models import AuditEvent
from modelmgr.registry.services import version_update
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def listening_worker(settings):
    """A stand-in for the worker's control port that records the paths it is sent."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            body = json.dumps({"nudged": True}).encode()
            self.send_response(202)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{server.server_port}"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def nudges(callbacks) -> list:
    return [c for c in callbacks if getattr(c, "__name__", "") == "worker_nudge"]


def test_pinning_is_audited_before_and_after(owner, closed_port_worker):
    version = make_version(make_model(owner, "det"), "1")
    version_update(version=version, actor=owner, pinned=True, actor_label="olivia (token t)")
    version.refresh_from_db()
    assert version.pinned is True
    event = AuditEvent.objects.get(action="version.pin")
    assert event.target == "olivia/det@1" and event.actor_label == "olivia (token t)"
    assert event.before["pinned"] is False and event.after["pinned"] is True

    version_update(version=version, actor=owner, pinned=False)
    version.refresh_from_db()
    event = AuditEvent.objects.get(action="version.unpin")
    assert version.pinned is False
    assert event.before["pinned"] is True and event.after["pinned"] is False


@pytest.mark.parametrize("status", ["pending", "validating", "error", "archived"])
def test_pinning_a_version_that_is_not_available_is_refused(owner, status):
    version = make_version(make_model(owner, "det"), "1", status=status)
    with pytest.raises(NotDeployable, match=f"^det@1 cannot be pinned: its status is {status};"):
        version_update(version=version, actor=owner, pinned=True)
    version.refresh_from_db()
    assert version.pinned is False and not AuditEvent.objects.exists()


def test_pinning_an_unsafe_version_needs_it_trusted(owner, closed_port_worker):
    version = make_version(make_model(owner, "det"), "1", unsafe=True)
    with pytest.raises(NotDeployable, match="has not marked trusted") as caught:
        version_update(version=version, actor=owner, pinned=True)
    assert caught.value.status == 409
    version_update(version=version, actor=owner, trusted=True, pinned=True)
    version.refresh_from_db()
    assert version.trusted and version.pinned


def test_archiving_a_pinned_version_clears_its_pin_in_the_same_audit_row(owner, closed_port_worker):
    version = make_version(make_model(owner, "det"), "1", pinned=True)
    version_update(version=version, actor=owner, status="archived")
    version.refresh_from_db()
    assert version.status == "archived" and version.pinned is False
    event = AuditEvent.objects.get()
    assert event.action == "version.archive"
    assert event.before["pinned"] is True and event.after["pinned"] is False


def test_revoking_trust_clears_the_pin(owner, closed_port_worker):
    version = make_version(make_model(owner, "det"), "1", unsafe=True, trusted=True, pinned=True)
    version_update(version=version, actor=owner, trusted=False)
    version.refresh_from_db()
    assert version.trusted is False and version.pinned is False


def test_a_pin_change_nudges_the_worker_after_commit(
    owner, settings, django_capture_on_commit_callbacks
):
    version = make_version(make_model(owner, "det"), "1")
    with listening_worker(settings) as seen:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            version_update(version=version, actor=owner, pinned=True)
        assert seen == []  # not before the commit
        for callback in callbacks:
            callback()
        assert seen == ["/reconcile?wait=0"]


def test_an_edit_that_leaves_the_pin_alone_does_not_nudge(
    owner, django_capture_on_commit_callbacks
):
    version = make_version(make_model(owner, "det"), "1", pinned=True)
    with django_capture_on_commit_callbacks() as callbacks:
        version_update(version=version, actor=owner, fields={"description": "x"}, pinned=True)
    assert nudges(callbacks) == []
    assert AuditEvent.objects.get().action == "version.update"


def test_a_worker_that_is_down_does_not_fail_the_pin(
    owner, closed_port_worker, django_capture_on_commit_callbacks, caplog
):
    version = make_version(make_model(owner, "det"), "1")
    with (
        caplog.at_level(logging.WARNING, logger="modelmgr.deploy.workers"),
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        version_update(version=version, actor=owner, pinned=True)
    assert len(nudges(callbacks)) == 1
    version.refresh_from_db()
    assert version.pinned is True
    assert "could not nudge the worker" in caplog.text and "cannot connect" in caplog.text
