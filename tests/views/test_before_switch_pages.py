"""/settings and the model page show the validation report and the fit preview (here
without a worker: the pages say so and show the registry's figures)."""

from __future__ import annotations

import pytest

from tests.views.conftest import HTMX
from tests.views.support import ingested, serving_slot

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_worker(settings):
    settings.MODELMGR_WORKER_URL = "http://127.0.0.1:9"


@pytest.fixture
def slot_and_candidate(owner, model_files, tmp_path):
    v1 = ingested(owner, model_files, tmp_path, version="1", seed=0)
    v2 = ingested(owner, model_files, tmp_path, version="2", seed=1)
    v2.val_accuracy = 0.5
    v2.save(update_fields=["val_accuracy"])
    slot = serving_slot("classifier", v1)
    slot.quality_gate = {"val_accuracy": ">= 0.9"}
    slot.save(update_fields=["quality_gate"])
    return v1, v2


def test_choosing_a_version_shows_its_report_against_the_slot(owner_client, slot_and_candidate):
    html = owner_client.get("/settings").content.decode()
    assert 'hx-get="/settings/classifier/check"' in html and 'id="fit-preview"' in html
    assert "gate: <code>val_accuracy &gt;= 0.9</code>" in html
    answer = owner_client.get(
        "/settings/classifier/check",
        {"slot-classifier": "olivia/clf@2", "seen-classifier": "olivia/clf@1"},
        **HTMX,
    ).content.decode()
    assert "Check of clf@2 against slot classifier" in answer
    assert "val_accuracy = 0.5 fails val_accuracy &gt;= 0.9" in answer
    assert "switch needs force" in answer
    keep = owner_client.get(
        "/settings/classifier/check",
        {"slot-classifier": "olivia/clf@1", "seen-classifier": "olivia/clf@1"},
        **HTMX,
    )
    assert keep.content == b""


def test_the_form_changes_get_a_fit_preview(owner_client, slot_and_candidate):
    answer = owner_client.post(
        "/settings/preview",
        {"slot-classifier": "olivia/clf@2", "seen-classifier": "olivia/clf@1"},
        **HTMX,
    ).content.decode()
    assert "Fit preview" in answer and "clf@1 → clf@2" in answer
    assert "could not be asked" in answer and "quality gate: val_accuracy" in answer


def test_model_page_checks_a_version_against_a_slot(owner_client, slot_and_candidate):
    html = owner_client.get("/models/clf?version=2").content.decode()
    assert "Check against a slot" in html and 'id="report-form"' in html
    answer = owner_client.get(
        "/models/clf/report", {"version": "2", "slot": "classifier"}, **HTMX
    ).content.decode()
    assert 'data-status="fail"' in answer and 'data-check="quality_gate"' in answer
    missing = owner_client.get("/models/clf/report", {"version": "2", "slot": "nope"}, **HTMX)
    assert "there is no slot named &#x27;nope&#x27;" in missing.content.decode()
