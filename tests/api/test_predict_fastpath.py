"""Bearer-token predictions answered at the ASGI level (modelmgr.deploy.fastpath), through
the real ASGI application: same answers as the ninja operation, without Django's handler."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.core.signals import request_started
from django.db import connections
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from modelmgr.asgi import application
from modelmgr.registry.tokens import token_revoke
from tests.conftest import make_token
from tests.deploy.live import live_worker
from tests.inference.support import make_slot, onnx_version

pytestmark = pytest.mark.django_db(transaction=True)

BODY = json.dumps({"inputs": {"x": [[1.0, 2.0, 3.0, 4.0]]}}).encode()


async def post(
    token: str | None,
    body: bytes = BODY,
    content_type="application/json",
    slot: str = "clf",
    accept: str = "",
) -> httpx.Response:
    headers = {"content-type": content_type}
    if accept:
        headers["accept"] = accept
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post(f"/api/v1/slots/{slot}/predict", content=body, headers=headers)


@pytest.fixture(autouse=True)
async def close_lookup_connections():
    """Token lookups ran in asgiref's shared thread: close its connection, or PostgreSQL
    refuses to drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def django_requests():
    """How many requests went through Django's handler."""
    seen = []

    def count(**kwargs):
        seen.append(1)

    request_started.connect(count)
    yield seen
    request_started.disconnect(count)


@pytest.fixture
def clf_slot(owner, model_files, tmp_path):
    version = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    return make_slot("clf", version, task="classifier")


@pytest.fixture
def write_only_token(owner) -> str:
    return make_token(owner, scopes=("write",), name="writer")


@pytest.mark.worker
async def test_prediction_skips_django_and_names_the_model(
    robot_token, clf_slot, settings, django_requests
):
    with live_worker(settings):
        response = await post(robot_token)
        assert response.status_code == 200, response.content
        assert response.json()["model"] == "clf@1"
        tensors = safetensors_save({"x": np.ones((2, 4), dtype=np.float32)})
        binary = await post(
            robot_token, tensors, "application/x-safetensors", accept="application/x-safetensors"
        )
        assert binary.status_code == 200, binary.content
        assert binary.headers["x-model"] == "clf@1"
        assert safetensors_load(binary.content)["y"].shape == (2, 2)
        bad = await post(robot_token, b'{"inputs": {"x": [[1, 2]]}}')
        assert bad.status_code == 422 and "input 'x'" in bad.json()["detail"]
    assert django_requests == []


async def test_unknown_token_is_401(closed_port_worker):
    response = await post("mm_not-a-token")
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked API token"}


async def test_revoked_token_is_refused_at_once(owner, robot_token, closed_port_worker):
    assert (await post(robot_token)).status_code == 503  # accepted (and cached)
    await sync_to_async(token_revoke)(user=owner, name="robot", actor=owner)
    assert (await post(robot_token)).status_code == 401


async def test_token_without_read_scope_is_403(write_only_token, closed_port_worker):
    response = await post(write_only_token)
    assert response.status_code == 403
    assert "lacks the 'read' scope" in response.json()["detail"]


async def test_worker_down_is_503_naming_it(robot_token, closed_port_worker):
    response = await post(robot_token)
    assert response.status_code == 503
    assert closed_port_worker in response.json()["detail"]


async def test_body_checks_match_the_api(robot_token, settings, closed_port_worker):
    assert (await post(robot_token, content_type="text/csv")).status_code == 415
    settings.MODELMGR_PREDICT_MAX_BYTES = 10
    response = await post(robot_token)
    assert response.status_code == 413
    assert "exceeds the 10 byte limit" in response.json()["detail"]


async def test_without_a_bearer_token_django_answers(closed_port_worker, django_requests):
    response = await post(None)
    assert response.status_code == 401
    assert "authentication required" in response.json()["detail"]
    assert django_requests
