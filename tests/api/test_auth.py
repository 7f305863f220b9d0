from __future__ import annotations

import re

import pytest
from django.test import Client

from modelmgr.api.routes import api as ninja_api
from modelmgr.models import RegisteredModel
from tests.conftest import make_token
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db

PARAMS = {"name": "det", "version": "1", "path": "model.bin", "ref": "det@1"}


def every_operation() -> list[tuple[str, str]]:
    schema = ninja_api.get_openapi_schema()
    operations = []
    for path, methods in schema["paths"].items():
        for method in methods:
            filled = re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m[1], "1"), path)
            operations.append((method.upper(), filled))
    return operations


def call(client: Client, method: str, path: str, **extra):
    return client.generic(method, path, **extra)


def test_the_api_has_the_registry_routes():
    paths = {path for _, path in every_operation()}
    assert "/api/v1/models/det/versions/1/files/model.bin" in paths
    assert "/api/v1/versions/det@1" in paths
    assert len(every_operation()) >= 15


@pytest.mark.parametrize(("method", "path"), every_operation())
def test_every_route_but_health_needs_authentication(client, owner, method, path):
    make_version(make_model(owner, "det"), "1", files={"model.bin": b"x"})
    response = call(client, method, path)
    if path == "/api/v1/health":
        assert response.status_code == 200
        return
    assert response.status_code == 401, (method, path, response.content)
    assert "authentication required" in response.json()["detail"]


# Predicting changes nothing: the read scope is enough for it (tests/api/test_predict_api.py).
# POSTs that only read: a prediction, a recommendation.
# A fit preview changes nothing: a read token may ask it.
READ_SCOPE_POSTS = {"/api/v1/slots/1/predict", "/api/v1/recommend", "/api/v1/switch/preview"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        (m, p)
        for m, p in every_operation()
        if m not in ("GET", "HEAD") and p not in READ_SCOPE_POSTS
    ],
)
def test_read_only_token_cannot_write(client, owner, read_only_token, method, path):
    make_version(make_model(owner, "det"), "1", files={"model.bin": b"x"})
    response = call(client, method, path, HTTP_AUTHORIZATION=f"Bearer {read_only_token}")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("token 'reader' lacks the 'write' scope")
    assert RegisteredModel.objects.filter(name="det").exists()


def test_read_only_token_can_read(client, owner, read_only_token):
    make_model(owner, "det")
    response = client.get("/api/v1/models/det", HTTP_AUTHORIZATION=f"Bearer {read_only_token}")
    assert response.status_code == 200


def test_unknown_token_is_401_naming_the_token_problem(client, owner):
    response = client.get("/api/v1/models", HTTP_AUTHORIZATION="Bearer mm_not-a-token")
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid or revoked API token"


def test_token_of_a_deactivated_user_is_refused(client, owner, robot_token):
    owner.is_active = False
    owner.save()
    response = client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {robot_token}")
    assert response.status_code == 401


def test_token_use_is_recorded(client, owner, robot_token):
    from modelmgr.models import ApiToken

    client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {robot_token}")
    assert ApiToken.objects.get(name="robot").last_used_at is not None


def test_session_can_read_without_csrf(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get("/api/v1/models").status_code == 200


def test_session_write_without_csrf_token_is_refused(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/api/v1/models", {"name": "det"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not RegisteredModel.objects.exists()


def test_session_write_with_csrf_token_works(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get("/admin/login/")  # any page that sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/models", {"name": "det"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201, response.content


def test_bearer_token_needs_no_csrf(owner, robot_token):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/models",
        {"name": "det"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {robot_token}",
    )
    assert response.status_code == 201


def test_anonymous_write_is_401_not_a_csrf_complaint():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/v1/models", {"name": "det"}, content_type="application/json")
    assert response.status_code == 401


def test_other_users_model_is_404_not_403(client, owner, other_user):
    make_version(make_model(owner, "det"), "1", files={"model.bin": b"x"})
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(other_user)}"
    for path in (
        "/api/v1/models/det",
        "/api/v1/models/det/versions",
        "/api/v1/models/det/versions/1",
        "/api/v1/models/det/versions/1/files/model.bin",
        "/api/v1/versions/det@1",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "not found" in response.json()["detail"]
    assert client.delete("/api/v1/models/det").status_code == 404
    assert RegisteredModel.objects.filter(name="det").exists()


def test_staff_see_other_users_models(client, owner, staff):
    make_model(owner, "det")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff)}"
    response = client.get("/api/v1/models/det")
    assert response.status_code == 200 and response.json()["owner"] == "olivia"
