"""In a real browser, before Apply: choosing a version shows its validation report
against the slot (a breaking signature change, a failed quality gate) and the fit
preview of the change; Apply with "force" then switches, audited as forced."""

from __future__ import annotations

from modelmgr.models import AuditEvent, Slot
from tests.browser.conftest import log_in, screenshot
from tests.views.support import ingested, serving_slot


def test_settings_shows_the_report_and_the_fit_preview_before_apply(
    staff, model_files, tmp_path, stack, page
):
    v1 = ingested(staff, model_files, tmp_path, version="1")
    v2 = ingested(staff, model_files, tmp_path, version="2", seed=1)
    v2.val_accuracy = 0.7
    # What the slot's callers read is named differently now: breaking.
    v2.signature = {
        **v2.signature,
        "outputs": [{**v2.signature["outputs"][0], "name": "scores"}],
    }
    v2.save(update_fields=["val_accuracy", "signature"])
    slot = serving_slot("classifier", v1)
    slot.quality_gate = {"val_accuracy": ">= 0.9"}
    slot.save(update_fields=["quality_gate"])
    stack.sync()

    log_in(page, "stella", "pw-stella")
    page.select_option("#select-classifier", "stella/clf@2")
    report = page.wait_for_selector("#check-classifier .report[data-status='fail']")
    text = report.inner_text()
    assert "breaking" in text and "renamed to 'scores'" in text
    assert "val_accuracy = 0.7 fails val_accuracy >= 0.9" in text
    assert "switch needs force" in text
    assert page.inner_text("[data-check='hardware']").startswith("ok")
    preview = page.wait_for_selector("#fit-preview #fit-result[data-fits='yes']")
    assert "clf@1 → clf@2" in preview.inner_text() and "Fits." in preview.inner_text()
    screenshot(page, "settings-report.png")

    page.check("#force-switch")
    page.click("#apply-changes")
    page.wait_for_selector(".switch-result .msg.ok")
    assert Slot.objects.get(name="classifier").active_version_id == v2.pk
    assert AuditEvent.objects.filter(action="slot.switch.forced", outcome="ok").exists()
