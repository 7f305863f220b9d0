"""modelmgr.templatetags.human: values as people read them, never Python reprs."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from django.utils import timezone

from modelmgr.templatetags.human import ago, changes, dtype, human, uptime


def test_json_values_read_as_text():
    assert human({"ai.onnx": 17}) == "ai.onnx 17"
    assert human({"": 17, "com.microsoft": 1}) == "ai.onnx 17, com.microsoft 1"
    assert human([]) == human({}) == human(None) == human("") == "—"
    assert human(False) == "no" and human(True) == "yes"
    assert human(["a", "b"]) == "a, b"
    assert human([{"path": "m.onnx", "size": 3}]) == "path m.onnx, size 3"


def test_an_unrecorded_dtype_is_unknown():
    assert dtype(None) == "unknown" and dtype("float32") == "float32"


def test_audit_changes_are_field_old_new_lines():
    event = SimpleNamespace(
        before={"production_ready": False, "status": "available", "tags": []},
        after={"production_ready": True, "status": "available", "tags": ["edge"]},
    )
    assert changes(event) == ["production_ready: no → yes", "tags: — → edge"]
    created = SimpleNamespace(before=None, after={"active": "clf@1"})
    assert changes(created) == ["active: clf@1"]


def test_under_a_minute_is_just_now():
    now = timezone.now()
    assert ago(now - timedelta(seconds=5)) == "just now"
    assert ago(now - timedelta(minutes=3)) == "3\xa0minutes ago"
    assert uptime(now) == "under a minute"
