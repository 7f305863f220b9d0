"""``manage.py slot``: canary, shadow, arms, a watched promotion and abort from the command
line, through the services the API uses, against a real worker."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from modelmgr.models import AuditEvent, Slot, SwitchWatch
from tests.deploy.live import live_worker, predict
from tests.deploy.test_canary_live import X, clf  # noqa: F401 (fixture)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def slot(*args: str) -> str:
    out = StringIO()
    call_command("slot", *args, stdout=out)
    return out.getvalue()


def test_canary_shadow_watched_promotion_and_abort_from_the_command_line(
    api,
    staff,
    settings,
    clf,  # noqa: F811
):
    with live_worker(settings):
        assert '"canary": "clf@2"' in slot("canary", "clf", "clf@2", "--share", "0.5")
        slot("shadow", "clf", "clf@3")
        for _ in range(20):
            predict(api, "clf", {"x": X})
        arms = json.loads(slot("arms", "clf"))["arms"]
        assert arms["shadow"]["ref"] == "clf@3" and arms["canary"]["share"] == 0.5
        assert arms["primary"]["requests"] + arms["canary"]["requests"] == 20

        # A watched promotion is watched in the foreground until its verdict.
        out = slot("promote", "clf", "--watch-window", "1", "--max-error-rate", "0.1")
        assert "watching clf" in out and "inconclusive:" in out.splitlines()[-1]
        row = Slot.objects.get(name="clf")
        assert (row.active_version_id, row.previous_version_id) == (clf["2"].pk, clf["1"].pk)
        assert SwitchWatch.objects.get().state == "inconclusive"

        slot("abort", "clf")
        row = Slot.objects.get(name="clf")
        assert row.canary_version_id is None and row.shadow_version_id is None
        labels = set(AuditEvent.objects.values_list("action", "actor_label"))
        assert {("slot.canary", "manage.py slot"), ("slot.abort", "manage.py slot")} <= labels

        with pytest.raises(CommandError, match="share must be from 0 to 1"):
            slot("canary", "clf", "clf@2", "--share", "2")
        with pytest.raises(CommandError, match="no canary"):
            slot("promote", "clf")
        with pytest.raises(CommandError, match="no slot named 'nope'"):
            slot("arms", "nope")


def test_a_slots_gate_from_the_command_line_is_checked_and_audited(staff, clf):  # noqa: F811
    shown = json.loads(
        slot("gate", "clf", "--quality-gate", '{"val_accuracy": 0.9}', "--production")
    )
    assert shown == {"slot": "clf", "quality_gate": {"val_accuracy": ">= 0.9"}, "production": True}
    assert AuditEvent.objects.get(action="slot.gate").actor_label == "manage.py slot"
    with pytest.raises(CommandError, match="expected '<op> <number>'"):
        slot("gate", "clf", "--quality-gate", '{"val_accuracy": "high"}')
    with pytest.raises(CommandError, match="not JSON"):
        slot("gate", "clf", "--quality-gate", "{val_accuracy")
    assert json.loads(slot("gate", "clf", "--no-production"))["production"] is False
    assert Slot.objects.get(name="clf").quality_gate == {"val_accuracy": ">= 0.9"}
