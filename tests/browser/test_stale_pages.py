"""Two operators at once: a stale /settings page never reverts the other's switch.

Operator A's page is stale for good (JavaScript off: no live updates, the plain form);
operator B switches from a live page meanwhile. A's switch of another slot leaves B's
slot alone; A's switch of the slot B changed is refused, naming B.
"""

from __future__ import annotations

import time

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.browser.conftest import WAIT_MS, log_in
from tests.browser.test_switching import deployed  # noqa: F401 - fixture
from tests.views.support import ingested

OUTCOME = ".switch-result .msg.ok, .switch-result .msg.err"


@pytest.fixture
def more_versions(deployed, staff, model_files, tmp_path):  # noqa: F811
    ingested(staff, model_files, tmp_path, version="3", seed=3)
    ingested(staff, model_files, tmp_path, name="yolo-tiny", version="2", task="detector", seed=4)
    return deployed


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob", is_staff=True)


def stale_page(browser, stack):
    """Operator A: stella, with JavaScript off, so her page never updates by itself."""
    context = browser.new_context(base_url=stack.url, java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/login/")
    page.fill("#id_username", "stella")
    page.fill("#id_password", "pw-stella")
    page.click("button[type=submit]")
    page.wait_for_url("**/settings")
    return page


def outcome_after_reload(page) -> str:
    """Without JavaScript the outcome shows when the page is loaded again."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        page.goto("/settings")
        box = page.locator(OUTCOME)
        if box.count():
            return box.first.inner_text()
        time.sleep(0.3)
    raise AssertionError("the switch never finished")


def live_switch(page, slot: str, value: str) -> None:
    page.select_option(f"#select-{slot}", value)
    page.click("#apply-changes")
    page.wait_for_selector(".switch-result .msg.ok")


def test_a_stale_page_does_not_revert_another_operators_switch(
    more_versions, staff, bob, stack, browser, page
):
    stack.sync()
    a = stale_page(browser, stack)
    log_in(page, "bob", "pw-bob")  # operator B, live

    # B switches the classifier while A's page still shows clf@1.
    live_switch(page, "classifier", "stella/clf@2")
    # A switches only the detector: her untouched classifier is not part of the switch.
    a.select_option("#select-detector", "stella/yolo-tiny@2")
    a.click("#apply-changes")
    assert "Switched" in outcome_after_reload(a)
    assert Slot.objects.get(name="detector").active_version.ref == "yolo-tiny@2"
    assert Slot.objects.get(name="classifier").active_version.ref == "clf@2"

    # A's page (reloaded: it shows clf@2) goes stale again; B moves the classifier on.
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@2')")
    live_switch(page, "classifier", "stella/clf@1")
    # A switches the classifier she last saw at clf@2: refused, naming B.
    a.select_option("#select-classifier", "stella/clf@3")
    a.click("#apply-changes")
    text = outcome_after_reload(a)
    assert "Switch refused:" in text and "switch refused" not in text
    assert "serves clf@1, not stella/clf@2 as expected: changed by bob at" in text
    assert Slot.objects.get(name="classifier").active_version.ref == "clf@1"
    refused = AuditEvent.objects.get(outcome="refused")
    assert refused.actor_label == "stella" and refused.after == {"classifier": "stella/clf@3"}
    a.context.close()
