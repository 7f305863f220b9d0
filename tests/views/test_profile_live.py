"""A profile's progress reaches open pages live: each batch size the worker measures is
pushed (``profile.progress``) into the profile card of that version's model page."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from modelmgr.deploy.profile import version_profile_run
from tests.inference.support import onnx_version
from tests.views.test_consumers import (  # noqa: F401 - the fixture closes ORM connections
    _close_consumer_connections,
    connect_as_session,
)
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
WAIT_S = 60  # turns a hang into a failure; not a timing assertion


async def _received(communicator) -> list[str]:
    messages = []
    while not await communicator.receive_nothing(timeout=0.5):
        messages.append(await communicator.receive_from(timeout=WAIT_S))
    return messages


async def test_each_measured_batch_size_is_pushed_to_the_versions_page(
    settings, staff, model_files, tmp_path
):
    version = await sync_to_async(onnx_version)(staff, model_files, tmp_path, name="clf")
    worker = await sync_to_async(start_worker)()
    try:
        await sync_to_async(worker.wait_ready)()
        settings.MODELMGR_WORKER_URL = worker.url
        communicator = await connect_as_session(staff)
        await sync_to_async(version_profile_run)(
            version=version, actor=staff, iterations=5, max_seconds=2
        )
        pushed = [m for m in await _received(communicator) if "profile-progress" in m]
        assert "loading a copy in the worker" in pushed[0]
        batches = [m for m in pushed if "measured batch" in m]
        assert [f"({i} of 4)" in m for i, m in enumerate(batches, 1)] == [True] * 4
        assert all(f'id="profile-progress-{version.pk}"' in m for m in pushed)
        assert all('hx-swap-oob="true"' in m and " p50, " in m for m in batches)
        await communicator.disconnect()
        # The model page has the element the pushes replace.
        page = await sync_to_async(_model_page)(staff)
        assert f'<span id="profile-progress-{version.pk}"' in page
    finally:
        await sync_to_async(worker.stop)()


def _model_page(user) -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse("model-detail", args=["clf"])).content.decode()
