"""The report's pieces without a worker: signature diff rules, quality-gate rules, the
API's refusals (4xx with a detail) and a report that says the worker could not be asked."""

from __future__ import annotations

import pytest

from modelmgr.deploy.gate import InvalidGate, clean_quality_gate, gate_failures
from modelmgr.deploy.sigdiff import signature_diff
from modelmgr.models import AuditEvent, Slot
from tests.registry.factories import make_model, make_version

SIG = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
}


def with_(side: str, **changes) -> dict:
    tensor = {**SIG[side][0], **changes}
    return {**SIG, side: [tensor]}


def kinds(old: dict, new: dict) -> list[tuple[str, str, bool]]:
    return [(c.side, c.kind, c.breaking) for c in signature_diff(old, new)]


def test_signature_diff_classifies_each_change():
    assert kinds(SIG, SIG) == []
    assert kinds(SIG, with_("outputs", name="scores")) == [("outputs", "renamed", True)]
    assert kinds(SIG, with_("outputs", shape=["batch", 3])) == [("outputs", "shape", True)]
    assert kinds(SIG, with_("inputs", dtype="float16")) == [("inputs", "dtype", True)]
    assert kinds(SIG, with_("inputs", shape=[None, None])) == [("inputs", "shape", False)]
    assert kinds(SIG, with_("inputs", shape=[1, 4])) == [("inputs", "shape", True)]
    assert kinds(SIG, with_("inputs", shape=["n", 4])) == []  # a symbolic name only
    assert kinds(SIG, with_("inputs", shape=["batch", 4, 1])) == [("inputs", "shape", True)]
    extra_out = {**SIG, "outputs": [*SIG["outputs"], {"name": "z", "shape": [1], "dtype": "int64"}]}
    assert kinds(SIG, extra_out) == [("outputs", "added", False)]
    assert kinds(extra_out, SIG) == [("outputs", "removed", True)]
    extra_in = {**SIG, "inputs": [*SIG["inputs"], {"name": "m", "shape": [1], "dtype": "bool"}]}
    assert kinds(SIG, extra_in) == [("inputs", "added", True)]


def test_quality_gate_rules_are_checked_and_normalised():
    assert clean_quality_gate({"val_accuracy": ">=0.9", "train_loss": "< .5"}) == {
        "val_accuracy": ">= 0.9",
        "train_loss": "< 0.5",
    }
    assert clean_quality_gate({"val_accuracy": 0.9}) == {"val_accuracy": ">= 0.9"}
    for bad in ({"val_accuracy": "at least 0.9"}, {"": ">= 1"}, ["val_accuracy"]):
        with pytest.raises(InvalidGate):
            clean_quality_gate(bad)


@pytest.mark.django_db
def test_gate_reads_fields_and_metadata_metrics_and_a_missing_metric_fails(owner):
    version = make_version(
        make_model(owner, "clf"), "1", val_accuracy=0.95, metadata={"metrics": {"f1": 0.5}}
    )
    slot = Slot(
        name="s", quality_gate={"val_accuracy": ">= 0.9", "f1": ">= 0.7", "test_accuracy": ">= 0.1"}
    )
    failures = gate_failures(version, slot)
    assert failures == [
        "f1 = 0.5 fails f1 >= 0.7",
        "test_accuracy >= 0.1 required, the version records no test_accuracy",
    ]


@pytest.mark.django_db
def test_report_and_preview_refuse_bad_refs_and_slots_with_a_detail(api, owner, settings):
    settings.MODELMGR_WORKER_URL = "http://127.0.0.1:9"  # nothing listens
    make_version(make_model(owner, "clf"), "1")
    Slot.objects.create(name="det")
    cases = [
        (api.get("/api/v1/versions/clf@1/report", {"slot": "nope"}), 404, "nope"),
        (api.get("/api/v1/versions/clf@9/report", {"slot": "det"}), 404, "9"),
        (api.get("/api/v1/versions/clf@1/report"), 422, "slot"),
        (
            api.post("/api/v1/switch/preview", {"nope": "clf@1"}, content_type="application/json"),
            404,
            "nope",
        ),
        (api.post("/api/v1/switch/preview", "[1]", content_type="application/json"), 422, "slot"),
        (
            api.put(
                "/api/v1/slots/det/gate",
                {"quality_gate": {"x": "big"}},
                content_type="application/json",
            ),
            403,
            "staff",
        ),
    ]
    for response, status, named in cases:
        assert response.status_code == status, response.content
        assert named in response.json()["detail"]


@pytest.mark.django_db
def test_report_without_a_worker_says_so_and_checks_the_rest(api, owner, settings):
    settings.MODELMGR_WORKER_URL = "http://127.0.0.1:9"
    make_version(make_model(owner, "clf"), "1", signature=SIG)
    Slot.objects.create(name="det", production=True)
    body = api.get("/api/v1/versions/clf@1/report", {"slot": "det"}).json()
    by = {c["name"]: c for c in body["checks"]}
    assert body["worker"]["reachable"] is False
    assert (
        by["hardware"]["status"] == "warning" and "could not be asked" in by["hardware"]["message"]
    )
    assert by["signature"]["status"] == "ok"  # the slot serves nothing
    assert by["quality_gate"]["status"] == "fail" and body["switch"] == "needs force"


@pytest.mark.django_db
def test_staff_set_a_gate_audited_and_a_bad_one_is_422(client, staff):
    client.force_login(staff)
    Slot.objects.create(name="det")
    response = client.put(
        "/api/v1/slots/det/gate",
        {"quality_gate": {"val_accuracy": ">= 0.9"}, "production": True},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "slot": "det",
        "quality_gate": {"val_accuracy": ">= 0.9"},
        "production": True,
    }
    assert AuditEvent.objects.filter(action="slot.gate", target="det").count() == 1
    bad = client.put(
        "/api/v1/slots/det/gate",
        {"quality_gate": {"val_accuracy": "high"}},
        content_type="application/json",
    )
    assert bad.status_code == 422 and "val_accuracy" in bad.json()["detail"]
