"""The model page's Profile button and Compare form in a real browser."""

from __future__ import annotations

from modelmgr.models import ModelVersion, VersionProfile
from tests.browser.conftest import log_in, screenshot
from tests.views.support import ingested


def test_profile_then_compare_two_versions(staff, stack, page, model_files, tmp_path):
    ingested(staff, model_files, tmp_path, name="clf", version="1")
    ingested(staff, model_files, tmp_path, name="clf", version="2", seed=2, out_features=3)
    ModelVersion.objects.filter(version="2").update(val_accuracy=0.9)

    log_in(page, "stella", "pw-stella")
    page.goto("/models/clf?version=1")
    page.wait_for_selector("#version-profile >> text=Not profiled yet.")
    page.click("#profile-run")
    # The panel comes back with the message and the table (the worker measured it).
    page.wait_for_selector("#version-panel .msg.ok >> text=Profiled clf@1 on cpu")
    batches = page.eval_on_selector_all(
        "#profile-table tbody tr td:first-child", "cells => cells.map(c => c.textContent)"
    )
    assert batches == ["1", "2", "4", "8"]
    assert page.is_visible("#profile-run >> text=Profile again")
    assert VersionProfile.objects.filter(version__version="1").count() == 1
    screenshot(page, "model-profile.png", hide_toasts=True)

    page.select_option("#compare-b", "stella/clf@2")
    page.click("#compare-run")
    page.wait_for_url("**/models/compare?*")
    page.wait_for_selector("#compare-signature")
    assert "Breaking for callers of clf@1" in page.inner_text("#compare-signature")
    assert "not profiled yet: clf@2" in page.inner_text("body")
    assert "val_accuracy" in page.inner_text("#compare-metrics")
    screenshot(page, "compare.png", hide_toasts=True)
