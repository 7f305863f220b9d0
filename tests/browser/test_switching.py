"""Switching slots in a real browser: live phases over /ws/events/, green or red, and
what the robots see through the API meanwhile."""

from __future__ import annotations

import re

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_token
from tests.inference.support import corrupt, gate_version
from tests.views.support import ingested, serving_slot

PHASES = ("validating", "loading", "warming up", "swapping", "unloading")


def predict_ref(stack, token: str, slot: str = "classifier") -> str:
    with stack.api(token) as api:
        answer = api.post(
            f"/api/v1/slots/{slot}/predict", json={"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}}
        )
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]


@pytest.fixture
def deployed(staff, model_files, tmp_path):
    v1 = ingested(staff, model_files, tmp_path, version="1")
    v2 = ingested(staff, model_files, tmp_path, version="2", seed=1)
    slot = serving_slot("classifier", v1)
    serving_slot(
        "detector",
        ingested(staff, model_files, tmp_path, name="yolo-tiny", task="detector", seed=2),
        task="detector",
    )
    return {"v1": v1, "v2": v2, "slot": slot}


def test_a_switch_shows_its_phases_live_then_green(deployed, staff, stack, page):
    gate = stack.gate_dir / "open"
    gate_version(staff, name="clf", version="3-gated", gate=gate)
    token = make_token(staff)
    stack.sync()
    assert predict_ref(stack, token) == "clf@1"

    log_in(page, "stella", "pw-stella")
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@1')")
    screenshot(page, "settings.png")

    page.select_option("#select-classifier", "stella/clf@3-gated")
    page.click("#apply-changes")
    # The worker's load is held by the gate: the page shows "loading" as it happens.
    page.wait_for_selector(".run .stepper li.active[data-phase='loading']")
    page.wait_for_selector(".run .log li:has-text('validating')")
    assert page.is_visible(".switch-result .msg.info")
    screenshot(page, "settings-switching.png")
    # Meanwhile the old model keeps answering.
    assert predict_ref(stack, token) == "clf@1"

    gate.touch()
    page.wait_for_selector(".switch-result .msg.ok")
    for phase in ("validating", "loading", "swapping"):
        assert page.locator(f".run .log li:has-text('{phase}')").count() >= 1
    # The log names the phases as the stepper does ("warming up", never bare "warming").
    log_text = page.inner_text(".run .log")
    assert "warming up" in log_text and not re.search(r"warming(?! up)", log_text), log_text
    for phase in PHASES:
        assert page.get_attribute(f".run .stepper li[data-phase='{phase}']", "class") == "done"
    assert "clf@3-gated" in page.inner_text(".switch-result")
    # The slot card was re-rendered from the server, without a reload.
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@3-gated')")
    assert predict_ref(stack, token) == "clf@3-gated"
    assert Slot.objects.get(name="classifier").active_version.version == "3-gated"


def test_a_failed_switch_is_red_and_the_old_model_still_serves(deployed, staff, stack, page):
    corrupt(deployed["v2"])
    token = make_token(staff)
    stack.sync()
    log_in(page, "stella", "pw-stella")
    page.select_option("#select-classifier", "stella/clf@2")
    page.click("#apply-changes")
    result = page.wait_for_selector(".switch-result .msg.err")
    text = result.inner_text()
    assert "Switch failed" in text and "classifier" in text
    assert "switch failed, nothing changed" not in text  # the headline says it once
    assert "sha256" in text or "corrupt" in text or "integrity" in text, text
    assert page.locator(".run .stepper li.failed").count() == 1
    assert page.inner_text("#slot-classifier .active-ref") == "clf@1"
    assert predict_ref(stack, token) == "clf@1"
    assert Slot.objects.get(name="classifier").active_version == deployed["v1"]
    failure = AuditEvent.objects.get(action="slot.switch")
    assert failure.outcome == "error" and failure.actor_label == "stella"


def test_rollback_button_switches_back(deployed, staff, stack, page):
    token = make_token(staff)
    stack.sync()
    log_in(page, "stella", "pw-stella")
    page.select_option("#select-classifier", "stella/clf@2")
    page.click("#apply-changes")
    page.wait_for_selector(".switch-result .msg.ok")
    page.wait_for_selector("#rollback-classifier")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rollback-classifier")
    page.wait_for_selector(".switch-result .msg.ok:has-text('Rolled back')")
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@1')")
    assert predict_ref(stack, token) == "clf@1"


def test_a_switch_made_through_the_api_shows_on_an_open_settings_page(deployed, staff, stack, page):
    token = make_token(staff)
    stack.sync()
    log_in(page, "stella", "pw-stella")
    assert page.locator("#switch-runs .run").count() == 0  # no run: no box
    with stack.api(token) as api:
        answer = api.post("/api/v1/switch", json={"classifier": "stella/clf@2"})
    assert answer.status_code == 200, answer.text
    page.wait_for_selector(".run .log li:has-text('switch succeeded')")
    assert page.is_visible("#switch-runs .run")
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@2')")


def test_batching_set_on_the_card_reaches_the_worker_without_a_restart(
    deployed, staff, stack, page
):
    stack.sync()
    log_in(page, "stella", "pw-stella")
    page.click("#batching-classifier summary")
    page.fill("#batch-size-classifier", "8")
    page.fill("#batch-delay-classifier", "3000")
    page.fill("#batch-preferred-classifier", "4")
    page.click("#batching-save-classifier")
    page.wait_for_selector("#switch-status .msg.ok:has-text('Batching on classifier: up to 8')")
    with stack.worker.client() as worker:
        applied = None
        for _ in range(200):  # the web nudges the worker after the commit
            applied = worker.get("/status").json()["batching"].get("classifier")
            if applied:
                break
            page.wait_for_timeout(50)
    assert applied == {
        "max_batch_size": 8,
        "max_queue_delay_us": 3000,
        "preferred_batch_sizes": [4],
    }
    page.fill("#batch-preferred-classifier", "16")
    page.click("#batching-save-classifier")
    page.wait_for_selector("#switch-status .msg.err:has-text('each preferred batch size must')")
    assert Slot.objects.get(name="classifier").max_batch_size == 8
