"""`manage.py bootstrap`, the first-start step of `make run`: an admin on the embedded
default only, demo models a new user can switch and predict with at once."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from modelmgr.models import AuditEvent, ModelVersion, Slot
from tests.conftest import make_token
from tests.deploy.live import live_worker, predict, switch

pytestmark = pytest.mark.django_db(transaction=True)


def _bootstrap(settings, *, embedded=True, **options):
    settings.EMBEDDED_DEFAULT = embedded
    call_command("bootstrap", **options)


def test_embedded_default_gets_admin_and_demo_models(settings):
    _bootstrap(settings)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("admin")
    refs = sorted(v.ref for v in ModelVersion.objects.select_related("model"))
    assert refs == ["tiny-classifier@1", "tiny-detector@1.0", "tiny-detector@1.1", "walk-policy@1"]
    assert all(v.status == "available" for v in ModelVersion.objects.all())
    serving = {s.name: s.active_version.ref for s in Slot.objects.select_related("active_version")}
    assert serving == {
        "detector": "tiny-detector@1.0",
        "policy": "walk-policy@1",
        "classifier": "tiny-classifier@1",
    }
    assert AuditEvent.objects.filter(action="slot.assign").count() == 3


def test_running_it_twice_changes_nothing(settings):
    _bootstrap(settings)
    _bootstrap(settings)
    assert get_user_model().objects.count() == 1
    assert ModelVersion.objects.count() == 4


def test_a_configured_deployment_gets_no_default_password(settings, capsys):
    _bootstrap(settings, embedded=False)
    assert not get_user_model().objects.exists()
    assert ModelVersion.objects.count() == 0
    assert "createsuperuser" in capsys.readouterr().out


@pytest.mark.worker
def test_demo_slots_serve_predictions_and_switch(settings, client):
    _bootstrap(settings)
    client.defaults["HTTP_AUTHORIZATION"] = (
        f"Bearer {make_token(get_user_model().objects.get(username='admin'))}"
    )
    with live_worker(settings) as worker:
        policy = predict(client, "policy", {"obs": np.zeros((2, 12)).tolist()})
        assert policy.status_code == 200, (policy.content, worker.logs()[-3000:])
        # TorchScript names no outputs: the single one gets the runtime's default name.
        (actions,) = (np.asarray(v) for v in policy.json()["outputs"].values())
        assert actions.shape == (2, 4) and np.all(np.abs(actions) <= 1)

        classifier = predict(client, "classifier", {"features": np.ones((3, 16)).tolist()})
        assert classifier.status_code == 200, classifier.content
        probs = np.asarray(classifier.json()["outputs"]["probs"])
        assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

        images = {"images": np.zeros((1, 3, 64, 64)).tolist()}
        assert predict(client, "detector", images).json()["model"] == "tiny-detector@1.0"
        switched = switch(client, {"detector": "tiny-detector@1.1"})
        assert switched.status_code == 200, switched.content
        after = predict(client, "detector", images)
        assert after.json()["model"] == "tiny-detector@1.1"
        assert np.asarray(after.json()["outputs"]["boxes"]).shape == (1, 4)


def _upload_onnx(client, name: str, task: str, path) -> None:
    with path.open("rb") as fh:
        response = client.post(
            f"/api/v1/models/{name}/versions", {"file": fh, "version": "1", "task": task}
        )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("slot", "task", "expected_input"),
    [
        ("detector", "detector", {"name": "images", "shape": ["batch", 3, 64, 64]}),
        ("classifier", "classifier", {"name": "features", "shape": ["batch", 16]}),
    ],
)
def test_demo_slots_refuse_a_model_with_another_input(
    settings, client, model_files, tmp_path, slot, task, expected_input
):
    """Without a contract the demo slots took any model of their task, and robots broke."""
    _bootstrap(settings)
    contract = Slot.objects.get(name=slot).contract
    assert {k: contract["inputs"][0][k] for k in ("name", "shape")} == expected_input
    admin = get_user_model().objects.get(username="admin")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(admin)}"
    _upload_onnx(client, "misfit", task, model_files.onnx(tmp_path / "misfit.onnx"))
    refused = switch(client, {slot: "misfit@1"})
    assert refused.status_code == 409, refused.content
    assert f"misfit@1 does not fit slot {slot}" in refused.json()["detail"]
    assert Slot.objects.get(name=slot).active_version.model.name != "misfit"


def test_bootstrap_gives_demo_slots_made_before_contracts_one(settings):
    _bootstrap(settings)
    Slot.objects.filter(name__in=["detector", "classifier"]).update(contract={})
    _bootstrap(settings)
    assert Slot.objects.get(name="classifier").contract["inputs"][0]["name"] == "features"
    assert AuditEvent.objects.filter(action="slot.update", target="detector").exists()
