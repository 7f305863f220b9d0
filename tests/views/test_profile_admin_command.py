"""The admin's "Profile" action and ``manage.py profile``: the same service, stored and
audited; refusals reported, not raised."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from modelmgr.models import AuditEvent, VersionProfile
from tests.deploy.live import live_worker
from tests.views.support import ingested

VERSIONS = "/admin/modelmgr/modelversion/"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_admin_action_and_command_profile_through_the_worker(
    staff_client, staff, settings, model_files, tmp_path
):
    version = ingested(staff, model_files, tmp_path, version="1")
    assert '<option value="profile_versions">' in staff_client.get(VERSIONS).content.decode()
    with live_worker(settings):
        response = staff_client.post(
            VERSIONS,
            {"action": "profile_versions", "_selected_action": [version.pk]},
            follow=True,
        )
        html = response.content.decode()
        assert "Profiled" in html and "clf@1 on cpu" in html
        out, err = StringIO(), StringIO()
        call_command(
            "profile",
            "clf@1",
            "--batch-sizes",
            "1,2",
            "--iterations",
            "5",
            "--json",
            stdout=out,
            stderr=err,
        )
    body = json.loads(out.getvalue())
    assert [r["batch_size"] for r in body["results"]] == [1, 2]
    assert "batch 2:" in err.getvalue()
    assert VersionProfile.objects.filter(version=version).count() == 2
    labels = list(
        AuditEvent.objects.filter(action="version.profile").values_list("actor_label", flat=True)
    )
    assert "manage.py profile" in labels and len(labels) == 2


@pytest.mark.django_db
def test_the_command_names_a_bad_ref_or_option(staff):
    with pytest.raises(CommandError, match="not found"):
        call_command("profile", "nope@1")
    with pytest.raises(CommandError, match="integers"):
        call_command("profile", "nope@1", "--batch-sizes", "a,b")
