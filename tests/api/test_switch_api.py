"""/api/v1/switch refusals (before the worker is involved) and the worker-down path.

The end-to-end switches against a real worker are in test_switch_worker.py.
"""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def serving(owner):
    v1 = version_of(owner, version="1")
    version_of(owner, version="2")
    Slot.objects.create(name="clf", task="classifier", active_version=v1)
    Slot.objects.create(name="det", task="detector")
    return v1


def switch(api, body, **extra):
    return api.post("/api/v1/switch", body, content_type="application/json", **extra)


def test_refusal_names_the_cause_per_slot_and_changes_nothing(api, serving):
    response = switch(api, {"clf": "clf@9", "det": "clf@2"})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("switch refused, nothing changed: ")
    assert body["slots"] == {
        "clf": "version clf@9 not found",
        "det": "clf@2 does not fit slot det: clf@2 is a classifier model, slot det serves detector",
    }
    assert Slot.objects.get(name="clf").active_version_id == serving.pk
    refusal = AuditEvent.objects.get()
    assert (refusal.outcome, refusal.error) == ("refused", body["detail"])


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (b"not json", "not JSON"),
        (b"[]", "send a JSON object"),
        (b"{}", "send a JSON object"),
        (b'{"clf": 3}', "expected a 'name@version' string or null"),
        # Names no slot can have, which PostgreSQL cannot even be asked about.
        (b'{"\\ud809\\udd88x\\udb76": "clf@1"}', "is not a slot name"),
        (b'{"a\\u0000b": "clf@1"}', "is not a slot name"),
        (b'{"clf": "clf@\\udb76"}', "is not a version reference"),
        (b'{"slots": {"clf": "clf@1"}, "expected": {"\\u0003": null}}', "is not a slot name"),
    ],
)
def test_malformed_body_is_422(api, serving, raw, named):
    response = api.generic("POST", "/api/v1/switch", raw, content_type="application/json")
    assert response.status_code == 422
    assert named in str(response.json())
    # A body that names slots is a refused switch (audited); one that does not, is noise.
    assert not AuditEvent.objects.exclude(outcome="refused").exists()


def test_worker_down_is_503_naming_the_worker(api, serving, closed_port_worker):
    response = switch(api, {"clf": "clf@2"})
    assert response.status_code == 503
    body = response.json()
    assert closed_port_worker in body["detail"]
    assert closed_port_worker in body["slots"]["clf"]
    assert response["Retry-After"]
    assert Slot.objects.get(name="clf").active_version_id == serving.pk
    assert AuditEvent.objects.get().outcome == "error"


def test_read_only_token_may_not_switch(client, read_only_token, serving):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {read_only_token}"
    assert switch(client, {"clf": "clf@2"}).status_code == 403


def test_switch_is_in_the_openapi_schema_with_its_body(api):
    schema = api.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/switch"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["example"]
