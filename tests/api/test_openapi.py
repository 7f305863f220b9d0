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


def test_every_operation_documents_its_error_responses_with_a_schema(api):
    schema = api.get("/api/v1/openapi.json").json()
    assert schema["components"]["schemas"]["ErrorOut"]["required"] == ["detail"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.endswith("/health"):
                continue
            responses = operation["responses"]
            for status in ("401", "403", "422"):
                assert status in responses, (method, path, status)
            if "{" in path:
                assert "404" in responses, (method, path)
            if method != "get":
                assert {"409", "413"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) and status not in ("416",):
                    assert "application/json" in response.get("content", {}), (path, status)
    predict = schema["paths"]["/api/v1/slots/{slot}/predict"]["post"]["responses"]
    assert {"415", "503"} <= set(predict)


def test_a_rollback_404_matches_its_documented_schema(api, staff):
    api.force_login(staff)
    schema = api.get("/api/v1/openapi.json").json()
    documented = schema["paths"]["/api/v1/slots/{slot}/rollback"]["post"]["responses"]["404"]
    ref = documented["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    required = schema["components"]["schemas"][ref].get("required", [])
    response = api.post("/api/v1/slots/nowhere/rollback")
    assert response.status_code == 404
    assert set(required) <= set(response.json()), (required, response.json())
