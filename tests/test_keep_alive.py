"""Ollama's keep_alive durations (modelmgr.keep_alive), the setting, and the version
field as the API edits it."""

from __future__ import annotations

import pytest

from modelmgr.keep_alive import FOREVER, BadKeepAlive, keep_alive_label, keep_alive_seconds


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("5m", 300.0),
        ("30s", 30.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("300", 300.0),
        (300, 300.0),
        (2.5, 2.5),
        (0, 0.0),
        ("0", 0.0),
        (-1, FOREVER),
        ("-1", FOREVER),
        ("-5m", FOREVER),
    ],
)
def test_ollama_durations_are_read_as_ollama_reads_them(given, seconds):
    assert keep_alive_seconds(given) == seconds


@pytest.mark.parametrize("given", ["five minutes", "5 m", "m", "", "1d", True, None, [], "nan"])
def test_anything_else_is_refused_naming_the_forms(given):
    with pytest.raises(BadKeepAlive) as refused:
        keep_alive_seconds(given)
    assert refused.value.status == 400 and '"5m"' in refused.value.detail


def test_labels_read_back_as_durations():
    assert [keep_alive_label(s) for s in (300, 5400, 30, -1, 0.5)] == [
        "5m",
        "1h30m",
        "30s",
        "forever",
        "0.5s",
    ]


@pytest.mark.django_db
def test_a_version_keep_alive_is_edited_as_a_duration_and_audited(owner, robot_token, client):
    from modelmgr.models import AuditEvent, ModelVersion
    from tests.registry.factories import make_model, make_version

    version = make_version(make_model(owner, "chatty", task="llm"), "1")
    headers = {"Authorization": f"Bearer {robot_token}"}
    url = "/api/v1/models/chatty/versions/1"

    def patch(body):
        return client.patch(url, body, content_type="application/json", headers=headers)

    changed = client.patch(
        url, {"keep_alive": "10m"}, content_type="application/json", headers=headers
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["keep_alive_s"] == 600.0
    version.refresh_from_db()
    assert version.keep_alive_s == 600.0
    audit = AuditEvent.objects.filter(action="version.update").latest("pk")
    assert audit.before["keep_alive_s"] is None and audit.after["keep_alive_s"] == 600.0
    bad = client.patch(
        url, {"keep_alive": "soon"}, content_type="application/json", headers=headers
    )
    assert bad.status_code == 422 and "not a duration" in bad.json()["detail"]
    cleared = client.patch(
        url, {"keep_alive": None}, content_type="application/json", headers=headers
    )
    assert cleared.json()["keep_alive_s"] is None
    assert ModelVersion.objects.get(pk=version.pk).keep_alive_s is None
