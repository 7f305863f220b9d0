"""The OpenAPI schema documents every error an operation can answer, with its body.

Operations declare their success responses (and a few their errors); the errors that come
from the API's common machinery (auth, CSRF, validation, not found, conflicts, body limits,
the worker) are added here once, by what the operation has (auth, path parameters, a
body, a method that changes state), so generated clients know each status and its schema.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI, Schema
from pydantic import Field

SAFE = {"get", "head", "options"}
# Status -> what it means, for every operation it applies to (see _statuses).
ERRORS = {
    400: "malformed request: a path, a cursor or a parameter this API did not hand out",
    401: "no credentials, or an unknown or revoked token",
    403: "the token lacks the scope, the CSRF check failed, or not allowed (staff, owner)",
    404: "not found, or not visible to you",
    409: "conflicts with the current state (in use, already exists, a switch running, "
    "a name several owners use, stored bytes corrupt)",
    413: "the request body is over its limit",
    422: "the request is invalid: each problem named in detail (errors: pydantic's list)",
    503: "the inference worker is down or restarting (Retry-After says when to retry)",
}


class ErrorOut(Schema):
    """Every error answer of the API."""

    detail: str = Field(description="what went wrong, in words")
    errors: list[dict[str, Any]] | None = Field(
        None, description="validation errors: pydantic's structured list (422 only)"
    )
    slots: dict[str, str] | None = Field(
        None, description="switch and rollback errors: slot -> cause"
    )


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def _statuses(path: str, method: str, operation: dict) -> set[int]:
    statuses = {400, 422}
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        # 409 too: a name several owners use (staff must pass owner), corrupt stored bytes
        statuses |= {404, 409}
    if method not in SAFE:
        statuses |= {403, 404, 409}
    if "requestBody" in operation or method not in SAFE:
        statuses.add(413)
    return statuses


def document_common_errors(schema: dict) -> dict:
    """Add the common error responses (with the ErrorOut schema) to every operation."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if not operation.get("security") and path.endswith("/health"):
                continue  # the liveness probe answers 200 or nothing
            responses = operation["responses"]
            for status in sorted(_statuses(path, method, operation)):
                responses.setdefault(
                    status,
                    {
                        "description": ERRORS[status],
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    return schema


class ModelmgrAPI(NinjaAPI):
    """NinjaAPI whose schema documents the common errors (document_common_errors)."""

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return document_common_errors(schema)
