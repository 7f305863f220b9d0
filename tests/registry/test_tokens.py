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


def test_create_token_with_slots_limits_it_and_says_so(owner):
    from io import StringIO

    err = StringIO()
    call_command(
        "create_token",
        "olivia",
        "--name",
        "arm",
        "--slots",
        "policy, detector",
        stdout=StringIO(),
        stderr=err,
    )
    token = ApiToken.objects.get(name="arm")
    assert token.slots == ["detector", "policy"]
    assert "on slot(s) detector, policy" in err.getvalue()
    assert AuditEvent.objects.get(action="token.create").after["slots"] == ["detector", "policy"]
    create_token("olivia", "--name", "any")
    assert ApiToken.objects.get(name="any").slots == []


def test_create_token_refuses_a_bad_slot_name(owner):
    with pytest.raises(CommandError, match="slot 'no way' must be a slot name"):
        create_token("olivia", "--name", "x", "--slots", "no way")
    assert not ApiToken.objects.exists()


def test_web_predict_with_a_token_limited_to_other_slots_is_403(owner, client, closed_port_worker):
    raw = create_token("olivia", "--name", "arm", "--slots", "policy")
    body = b'{"inputs": {"x": [[1, 2, 3, 4]]}}'
    response = client.generic(
        "POST",
        "/api/v1/slots/det/predict",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "token 'arm' may not use slot 'det' (it is limited to policy)"
    }
    allowed = client.generic(
        "POST",
        "/api/v1/slots/policy/predict",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert allowed.status_code == 503  # past auth: it reached for the (stopped) worker


def test_admin_shows_and_edits_a_tokens_slots_audited(owner, staff, client):
    create_token("olivia", "--name", "arm", "--slots", "policy")
    token = ApiToken.objects.get(name="arm")
    client.force_login(staff)
    listing = client.get("/admin/modelmgr/apitoken/")
    assert b"policy" in listing.content
    url = f"/admin/modelmgr/apitoken/{token.pk}/change/"
    page = client.get(url)
    assert b'value="policy"' in page.content
    response = client.post(url, {"slots": "detector,policy", "revoked": ""})
    assert response.status_code == 302, response.content[:2000]
    token.refresh_from_db()
    assert token.slots == ["detector", "policy"]
    event = AuditEvent.objects.get(action="token.admin_change")
    assert event.before == {"slots": ["policy"]} and event.after == {
        "slots": ["detector", "policy"]
    }
    bad = client.post(url, {"slots": "no way", "revoked": ""})
    assert bad.status_code == 200 and b"must be a slot name" in bad.content
    client.post(url, {"slots": "", "revoked": ""})
    token.refresh_from_db()
    assert token.slots == []
