"""Data drift in the browser: /status turns a slot's badge to "drift" live as shifted
inputs arrive, and the model page draws the reference vs current histograms."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_token
from tests.inference.support import make_slot, onnx_version


@pytest.fixture
def det(staff, model_files, tmp_path, stack):
    version = onnx_version(staff, model_files, tmp_path, name="clf", version="1")
    make_slot("det", version, task="classifier")
    stack.sync()
    return version


def send(stack, rng, *, mean: float, count: int) -> None:
    with httpx.Client(base_url=stack.worker.url, timeout=60) as http:
        for _ in range(count):
            x = rng.normal(mean, 1.0, size=(1, 4)).round(5).tolist()
            assert http.post("/infer/det", json={"inputs": {"x": x}}).status_code == 200


def test_drift_turns_red_live_and_the_model_page_plots_it(det, staff, stack, page):
    rng = np.random.default_rng(21)
    with stack.api(make_token(staff)) as api:
        reset = api.post("/api/v1/slots/det/drift/reset", json={"reference_requests": 60})
        assert reset.status_code == 200, reset.text
    log_in(page, "stella", "pw-stella")
    send(stack, rng, mean=0.0, count=120)
    page.goto("/status")
    page.locator('#drift-badge-det[data-status="ok"]').wait_for()

    send(stack, rng, mean=2.0, count=60)
    # Pushed over /ws/events/: no reload.
    page.locator('#drift-badge-det[data-status="drift"]').wait_for()
    row = page.locator('#data-drift tr[data-slot="det"]')
    assert "x[0]" in row.inner_text() or "y[0]" in row.inner_text()
    screenshot(page, "status-drift.png", hide_toasts=True)

    row.get_by_role("link", name="histograms").click()
    page.wait_for_url("**/models/clf?version=1*")
    panel = page.locator('#drift .drift-panel[data-slot="det"]')
    assert panel.locator('[data-status="drift"]').count() == 1
    assert panel.locator('tr[data-feature="x[0]"]').inner_text().split()[-1] == "drift"
    plots = panel.locator(".drift-plot canvas")
    plots.first.wait_for()
    assert plots.count() >= 2
    panel.scroll_into_view_if_needed()
    screenshot(page, "model-drift.png", hide_toasts=True)
