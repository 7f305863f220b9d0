"""TorchScript records no shapes or dtypes: the worker fills them from what warm-up saw
(inference.observe), and the model page shows them instead of `?` and `None`."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from modelmgr.models import AuditEvent, ModelVersion
from tests.deploy.live import live_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _policy() -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name="walk-policy")


def test_the_demo_policy_shows_the_signature_its_warm_up_saw(settings, client):
    settings.EMBEDDED_DEFAULT = True
    call_command("bootstrap")
    before = _policy().signature
    assert before["inputs"][0].get("dtype") is None  # what TorchScript inspection gives

    with live_worker(settings):
        deadline = time.monotonic() + 30
        while not (_policy().signature["inputs"][0].get("dtype")) and time.monotonic() < deadline:
            time.sleep(0.2)

    signature = _policy().signature
    assert signature["inputs"] == [{"name": "obs", "shape": ["batch", 12], "dtype": "float32"}]
    assert signature["outputs"] == [{"name": "output", "shape": ["batch", 4], "dtype": "float32"}]
    event = AuditEvent.objects.get(action="version.signature", target="walk-policy@1")
    assert event.actor_label.startswith("worker")

    client.force_login(get_user_model().objects.get(username="admin"))
    html = client.get("/models/walk-policy").content.decode()
    table = html[html.index('class="table-wrap signature"') :]
    table = table[: table.index("</table>")]
    assert "<code>[batch, 12]</code></td><td>float32</td>" in table
    assert "<code>[batch, 4]</code></td><td>float32</td>" in table
    assert "None" not in table and "?" not in table


def test_what_inspection_read_is_kept():
    from inference.observe import _fill

    stored = [{"name": "x", "shape": [None, 3], "dtype": None}]
    observed = [{"name": "x", "shape": ["batch", 3], "dtype": "float32"}]
    assert _fill(stored, observed) == [{"name": "x", "shape": [None, 3], "dtype": "float32"}]
