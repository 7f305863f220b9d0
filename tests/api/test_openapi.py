from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_openapi_docs_page_renders(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert b"openapi.json" in response.content


def test_openapi_schema_lists_the_registry_routes_with_bearer_auth(client):
    schema = client.get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    assert "/api/v1/models/{name}/versions/{version}/files/{path}" in paths
    assert "/api/v1/versions/{ref}" in paths
    upload = paths["/api/v1/models/{name}/versions"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert any("TokenAuth" in s for s in upload["security"])
