"""Before a switch, against a real worker: the validation report (signature diff,
dependencies, hardware, load test), quality gates refusing a switch unless forced, and
the fit preview naming the cached model it would evict."""

from __future__ import annotations

import platform

import pytest

from modelmgr.deploy.client import worker_client
from modelmgr.models import AuditEvent, Slot
from tests.deploy.live import live_worker, served_by, switch
from tests.inference.support import ONNX_SIGNATURE, make_slot, onnx_version, registered
from tests.registry.factories import make_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def built_onnx(owner, model_files, tmp_path, *, name, version, out_features=2, output="y"):
    """A real ONNX model whose recorded signature is what it really is."""
    data = model_files.onnx(
        tmp_path / "built" / f"{name}-{version}.onnx",
        out_features=out_features,
        output_name=output,
    ).read_bytes()
    signature = {
        "inputs": ONNX_SIGNATURE["inputs"],
        "outputs": [{"name": output, "shape": ["batch", out_features], "dtype": "float32"}],
    }
    return make_version(
        registered(owner, name),
        version,
        files={"model.onnx": data},
        framework="onnx",
        signature=signature,
    )


def report(api, ref: str, slot: str, **query):
    response = api.get(f"/api/v1/versions/{ref}/report", {"slot": slot, **query})
    assert response.status_code == 200, response.content
    return response.json()


def check(body: dict, name: str) -> dict:
    return next(c for c in body["checks"] if c["name"] == name)


def test_report_calls_a_renamed_output_and_a_changed_shape_breaking(
    api, settings, owner, model_files, tmp_path
):
    served = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    make_slot("clf", served, task="classifier")
    built_onnx(owner, model_files, tmp_path, name="clf", version="2", output="scores")
    built_onnx(owner, model_files, tmp_path, name="clf", version="3", out_features=3)
    same = onnx_version(owner, model_files, tmp_path, name="clf", version="4", seed=4)
    same.python_version = ".".join(platform.python_version_tuple()[:2])
    same.dependencies = ["numpy>=1.20", "surely-not-installed-pkg>=1"]
    same.save(update_fields=["python_version", "dependencies"])
    with live_worker(settings):
        body = report(api, "clf@2", "clf", load=1)
        assert body["serving"] == "clf@1"
        assert body["breaking"] is True and body["status"] == "fail"
        signature = check(body, "signature")
        assert signature["status"] == "fail"
        assert "renamed to 'scores'" in signature["message"]
        (change,) = signature["details"]
        assert change["kind"] == "renamed" and change["breaking"] is True
        # The real load-and-infer test ran in the worker.
        load = check(body, "load_test")
        assert load["status"] == "ok", load
        assert "clf@2 loaded" in load["message"]
        assert check(body, "format")["status"] == "ok"
        assert check(body, "hardware")["status"] == "ok"

        body = report(api, "clf@3", "clf")
        signature = check(body, "signature")
        assert body["breaking"] is True
        assert signature["details"][0]["kind"] == "shape"
        assert "dim 1: 2 -> 3" in signature["message"]
        assert check(body, "load_test")["status"] == "skipped"

        body = report(api, "clf@4", "clf")
        assert body["breaking"] is False
        assert check(body, "signature")["status"] == "ok"
        deps = check(body, "dependencies")
        assert deps["status"] == "fail"
        assert "surely-not-installed-pkg is not installed in the worker" in deps["message"]
        assert "numpy>=1.20" in deps["details"]["met"]
        assert deps["details"]["worker_python"] == platform.python_version()


def test_quality_gate_refuses_a_switch_unless_forced_and_the_force_is_audited(
    api, settings, owner, model_files, tmp_path
):
    served = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    weak = onnx_version(owner, model_files, tmp_path, name="clf", version="2", seed=2)
    weak.val_accuracy = 0.8
    weak.save(update_fields=["val_accuracy"])
    make_slot("clf", served, task="classifier", quality_gate={"val_accuracy": ">= 0.9"})
    with live_worker(settings):
        body = report(api, "clf@2", "clf")
        gate = check(body, "quality_gate")
        assert gate["status"] == "fail" and body["switch"] == "needs force"
        assert "val_accuracy = 0.8 fails val_accuracy >= 0.9" in gate["message"]

        refused = switch(api, {"clf": "clf@2"})
        assert refused.status_code == 409, refused.content
        cause = refused.json()["slots"]["clf"]
        assert "quality gate" in cause and "val_accuracy >= 0.9" in cause
        assert Slot.objects.get(name="clf").active_version_id == served.pk
        assert served_by(api, "clf") == "clf@1"
        assert AuditEvent.objects.filter(action="slot.switch", outcome="refused").exists()

        forced = switch(api, {"slots": {"clf": "clf@2"}, "force": True})
        assert forced.status_code == 200, forced.content
        assert served_by(api, "clf") == "clf@2"
        row = AuditEvent.objects.get(action="slot.switch.forced")
        assert row.outcome == "ok" and row.after["clf"] == "clf@2"
        assert "val_accuracy" in row.after["overridden"]["clf"][0]


def test_production_slot_takes_only_production_ready_versions_unless_forced(
    api, settings, owner, model_files, tmp_path
):
    served = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    onnx_version(owner, model_files, tmp_path, name="clf", version="2", seed=2)
    make_slot("clf", served, task="classifier", production=True)
    refused = switch(api, {"clf": "clf@2"})
    assert refused.status_code == 409
    assert "not production-ready" in refused.json()["slots"]["clf"]
    assert Slot.objects.get(name="clf").active_version_id == served.pk


def test_fit_preview_names_the_cached_model_it_would_evict_and_changes_nothing(
    api, settings, owner, model_files, tmp_path
):
    served = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    make_slot("clf", served, task="classifier")
    cached = [
        onnx_version(
            owner, model_files, tmp_path, name=name, version="1", seed=i + 1, min_vram_mb=25
        )
        for i, name in enumerate(("older", "newer", "next"))
    ]
    older, newer, candidate = cached
    with live_worker(settings, MODELMGR_WORKER_RAM_BUDGET_MB=64):
        client = worker_client()
        client.call("POST", "/load", {"version_id": older.pk})
        client.call("POST", "/load", {"version_id": newer.pk})

        response = api.post(
            "/api/v1/switch/preview", {"clf": candidate.ref}, content_type="application/json"
        )
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["worker"]["reachable"] is True
        assert body["fits"] is True
        slot = body["slots"]["clf"]
        assert slot["current"] == "clf@1" and slot["target"] == "next@1" and slot["load"]
        assert slot["needed_bytes"] == 25 * 1024 * 1024
        assert [e["ref"] for e in body["evictions"]] == ["older@1"]
        assert body["evictions"][0]["for_ref"] == "next@1"
        assert body["memory"]["budget_bytes"] == 64 * 1024 * 1024

        # Nothing changed: both cached models are still loaded, the slot still serves clf@1.
        loaded = {m["ref"] for m in client.status()["models"]}
        assert {"older@1", "newer@1", "clf@1"} <= loaded and "next@1" not in loaded
        assert served_by(api, "clf") == "clf@1"

        hardware = check(report(api, "next@1", "clf"), "hardware")
        assert hardware["status"] == "warning" and "would evict older@1" in hardware["message"]
