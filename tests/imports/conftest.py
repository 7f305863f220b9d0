"""Fixtures for import tests: a real local file server, settings that let imports reach
it (and only it), event capture on the real channel layer, and leftover checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from modelmgr.events import EVENTS_GROUP
from modelmgr.imports.services import import_create
from modelmgr.models import DownloadJob, ModelVersion, RegisteredModel
from tests.imports.server import FileServer


@pytest.fixture
def import_settings(settings):
    """Imports may reach 127.0.0.1 only (any port but modelmgr's own); progress is
    flushed on every 256-byte chunk and a transient failure is retried without waiting."""
    settings.MODELMGR_IMPORT_ALLOWED_HOSTS = []
    settings.MODELMGR_IMPORT_ALLOW_PRIVATE = False
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1:*"]
    settings.MODELMGR_IMPORT_PROGRESS_INTERVAL = 0.0
    settings.MODELMGR_IMPORT_RETRY_BACKOFF_SECONDS = 0.0
    settings.MODELMGR_IMPORT_MAX_ATTEMPTS = 5
    settings.MODELMGR_IMPORT_RUNNER = False
    settings.MODELMGR_STREAM_CHUNK_BYTES = 256
    settings.MODELMGR_IMPORT_CONNECT_TIMEOUT = 5.0
    settings.MODELMGR_IMPORT_READ_TIMEOUT = 20.0
    return settings


@pytest.fixture
def server(import_settings):
    srv = FileServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def onnx_data(model_files, tmp_path) -> bytes:
    return model_files.onnx(tmp_path / "built" / "model.onnx").read_bytes()


@pytest.fixture
def create_job(owner):
    def create(url: str, model_name: str = "imported", **kwargs) -> DownloadJob:
        return import_create(owner=owner, url=url, model_name=model_name, actor=owner, **kwargs)

    return create


def staged_files(root: Path) -> list[str]:
    staging = root / ".staging"
    return sorted(p.name for p in staging.rglob("*") if p.is_file()) if staging.exists() else []


def stored_blobs(root: Path) -> list[str]:
    blobs = root / "sha256"
    return sorted(p.name for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []


def assert_nothing_stored(root: Path) -> None:
    """No staged or partial file, no blob, no model or version row."""
    assert staged_files(root) == []
    assert stored_blobs(root) == []
    assert ModelVersion.objects.count() == 0
    assert RegisteredModel.objects.count() == 0


class EventTap:
    """A channel subscribed to the events group on the configured (real) channel layer."""

    def __init__(self):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(EVENTS_GROUP, self.channel)

    def import_events(
        self, job_id: int, *, until_state: str | None = None, wait_s: float = 10.0
    ) -> list[dict]:
        """The ``import.progress`` payloads of ``job_id`` received so far (in order);
        with ``until_state``, keep receiving until that state arrives."""

        async def drain() -> list[dict]:
            found: list[dict] = []
            while True:
                timeout = wait_s if until_state else 0.5
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel), timeout)
                except TimeoutError:
                    return found
                if message.get("type") != "import.progress" or message["job"]["id"] != job_id:
                    continue
                found.append(message["job"])
                if until_state and message["job"]["state"] == until_state:
                    return found

        return async_to_sync(drain)()

    def close(self) -> None:
        async_to_sync(self.layer.group_discard)(EVENTS_GROUP, self.channel)


@pytest.fixture
def events():
    tap = EventTap()
    yield tap
    tap.close()
