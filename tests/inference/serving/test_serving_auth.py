"""The serving port's probes and token auth, against a real worker subprocess."""

from __future__ import annotations

import httpx
import pytest

from modelmgr.registry.tokens import token_revoke
from tests.inference.serving.conftest import bearer, token
from tests.inference.support import eventually

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
BODY = {"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}}
V2_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def test_probes_answer_without_a_token(worker_proc):
    with httpx.Client(base_url=worker_proc.serve_url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/slots/det/predict"),
        ("GET", "/v2"),
        ("GET", "/v2/models/det"),
        ("GET", "/v2/models/det/ready"),
        ("POST", "/v2/models/det/infer"),
        ("GET", "/v2/models/det/versions/1"),
        ("GET", "/no/such/thing"),
    ],
)
def test_anonymous_gets_401_with_a_challenge_everywhere_else(worker_proc, method, path):
    response = httpx.request(method, worker_proc.serve_url + path, json=BODY, timeout=30)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in response.json()["detail"]
    if path.startswith("/v2"):
        assert response.json()["error"] == response.json()["detail"]


def test_unknown_token_is_401_and_a_write_only_token_is_403(worker_proc, owner):
    url = worker_proc.serve_url + "/api/v1/slots/det/predict"
    response = httpx.post(url, json=BODY, headers=bearer("mm_not-a-token"), timeout=30)
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked API token"}
    writer = token(owner, scopes=("write",), name="writer")
    response = httpx.post(url, json=BODY, headers=bearer(writer), timeout=30)
    assert response.status_code == 403
    assert "lacks the 'read' scope" in response.json()["detail"]


def test_revoked_token_and_deactivated_user_stop_working_within_the_cache_time(
    worker_proc, owner, other_user
):
    """MODELMGR_TOKEN_CACHE_S is 0.5 s here: each change is seen within it."""
    url = worker_proc.serve_url + "/api/v1/slots/det/predict"
    revoked = token(owner, name="soon-revoked")
    assert httpx.post(url, json=BODY, headers=bearer(revoked), timeout=30).status_code == 200
    token_revoke(user=owner, name="soon-revoked")
    eventually(
        lambda: httpx.post(url, json=BODY, headers=bearer(revoked), timeout=30).status_code == 401,
        limit=10,
        what="the revoked token refused",
    )
    others = token(other_user, name="others")
    assert httpx.post(url, json=BODY, headers=bearer(others), timeout=30).status_code == 200
    other_user.is_active = False
    other_user.save()
    eventually(
        lambda: httpx.post(url, json=BODY, headers=bearer(others), timeout=30).status_code == 401,
        limit=10,
        what="the deactivated user's token refused",
    )


def test_a_token_limited_to_other_slots_gets_403_naming_the_slot(worker_proc, owner):
    limited = token(owner, slots=("policy", "pose"), name="policy-robot")
    expected = "token 'policy-robot' may not use slot 'det' (it is limited to policy, pose)"
    with httpx.Client(
        base_url=worker_proc.serve_url, headers=bearer(limited), timeout=30
    ) as client:
        response = client.post("/api/v1/slots/det/predict", json=BODY)
        assert response.status_code == 403
        assert response.json() == {"detail": expected}
        for method, path in (
            ("GET", "/v2/models/det"),
            ("GET", "/v2/models/det/ready"),
            ("POST", "/v2/models/det/infer"),
        ):
            response = client.request(method, path, json=V2_BODY)
            assert response.status_code == 403, path
            assert response.json()["error"] == expected
        # Its own slot passes auth (and is not served here: 404, not 403).
        assert client.post("/api/v1/slots/policy/predict", json=BODY).status_code == 404
    own = token(owner, slots=("det",), name="det-robot")
    response = httpx.post(
        worker_proc.serve_url + "/api/v1/slots/det/predict",
        json=BODY,
        headers=bearer(own),
        timeout=30,
    )
    assert response.status_code == 200, response.text
