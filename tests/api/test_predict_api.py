"""/api/v1/slots/{slot}/predict without a worker: auth, body checks, the worker-down 503.

Predictions against a real worker are in test_predict_worker.py.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

BODY = b'{"inputs": {"x": [[1, 2, 3, 4]]}}'


def predict(client, body=BODY, content_type="application/json", slot="clf", **extra):
    return client.generic(
        "POST", f"/api/v1/slots/{slot}/predict", body, content_type=content_type, **extra
    )


def test_worker_down_is_a_quick_503_naming_the_worker(api, closed_port_worker):
    response = predict(api)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert closed_port_worker in detail and "cannot connect" in detail


def test_read_only_token_may_predict(client, read_only_token, closed_port_worker):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {read_only_token}"
    assert predict(client).status_code == 503  # past auth: it reached for the worker


def test_anonymous_predict_is_401(client, closed_port_worker):
    assert predict(client).status_code == 401


def test_unsupported_content_type_is_415(api, closed_port_worker):
    response = predict(api, b"a,b", content_type="text/csv")
    assert response.status_code == 415
    assert "'text/csv' is not accepted" in response.json()["detail"]


def test_body_over_the_limit_is_413(api, settings, closed_port_worker):
    settings.MODELMGR_PREDICT_MAX_BYTES = 10
    response = predict(api)
    assert response.status_code == 413
    assert "exceeds the 10 byte limit" in response.json()["detail"]
