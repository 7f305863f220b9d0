from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from modelmgr.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def create_token(*args) -> str:
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def test_create_token_prints_the_raw_token_once_and_stores_only_its_hash(owner, client):
    raw = create_token("olivia", "--name", "ci", "--scopes", "read,write")
    token = ApiToken.objects.get(name="ci")
    assert raw.startswith("mm_") and token.token_hash == ApiToken.hash_token(raw)
    assert raw not in str(ApiToken.objects.values().get(pk=token.pk))
    assert token.scopes == ["read", "write"]
    response = client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="token.create")
    assert event.target == "olivia/ci" and event.actor_label == "manage.py create_token"


def test_create_token_defaults_to_read_scope(owner):
    create_token("olivia", "--name", "reader")
    assert ApiToken.objects.get(name="reader").scopes == ["read"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nobody", "--name", "x"), "no user named 'nobody'"),
        (("olivia", "--name", "x", "--scopes", "read,admin"), "scopes must be"),
        (("olivia", "--name", " "), "needs a name"),
    ],
)
def test_create_token_refuses_bad_input_and_stores_nothing(owner, args, message):
    with pytest.raises(CommandError, match=message):
        create_token(*args)
    assert not ApiToken.objects.exists() and not AuditEvent.objects.exists()


def test_second_active_token_with_the_same_name_is_refused(owner):
    create_token("olivia", "--name", "ci")
    with pytest.raises(CommandError, match="already has an active token named 'ci'"):
        create_token("olivia", "--name", "ci")


def test_revoked_token_gets_401(owner, client):
    raw = create_token("olivia", "--name", "ci")
    call_command("revoke_token", "olivia", "--name", "ci", stdout=None)
    response = client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    event = AuditEvent.objects.get(action="token.revoke")
    assert event.before["revoked"] is False and event.after["revoked"] is True


def test_revoking_an_unknown_token_says_so(owner):
    with pytest.raises(CommandError, match="no active token named 'ghost'"):
        call_command("revoke_token", "olivia", "--name", "ghost")
