from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_openapi_docs_page_renders_for_a_logged_in_browser(owner_client):
    response = owner_client.get("/api/v1/docs")
    assert response.status_code == 200
    assert b"openapi.json" in response.content


def test_an_anonymous_browser_is_sent_to_log_in_for_the_docs(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/api/v1/docs"


def test_the_schema_is_401_without_login_or_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_the_schema_is_served_to_a_read_only_token(client, read_only_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {read_only_token}"
    assert client.get("/api/v1/openapi.json").json()["info"]["title"] == "modelmgr API"


def test_the_schema_refuses_an_unknown_token_naming_the_problem(client):
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer nope"
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid or revoked API token"


def test_openapi_schema_lists_the_registry_routes_with_bearer_auth(api):
    schema = api.get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    assert "/api/v1/models/{name}/versions/{version}/files/{path}" in paths
    assert "/api/v1/versions/{ref}" in paths
    upload = paths["/api/v1/models/{name}/versions"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert any("TokenAuth" in s for s in upload["security"])
