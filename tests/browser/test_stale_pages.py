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


def outcome_after_reload(page, actor: str = "stella") -> str:
    """Without JavaScript the outcome shows when the page is loaded again: the outcome of
    ``actor``'s newest run (the page lists everyone's recent runs, newest first, and
    another operator's finished run must not be read as hers while hers still runs)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        page.goto("/settings")
        newest = page.locator("section.run", has_text=f"by {actor}").first
        box = newest.locator(OUTCOME)
        if box.count():
            return box.first.inner_text()
        time.sleep(0.3)
    raise AssertionError(f"{actor}'s switch never finished")


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


def test_a_live_push_keeps_the_choices_not_yet_applied(more_versions, staff, bob, stack, page):
    from tests.conftest import make_token

    token = make_token(staff)
    stack.sync()
    log_in(page, "bob", "pw-bob")
    page.select_option("#select-classifier", "stella/clf@3")  # chosen, not applied
    with stack.api(token) as api:
        answer = api.post("/api/v1/switch", json={"detector": "stella/yolo-tiny@2"})
    assert answer.status_code == 200, answer.text
    # The push re-renders every card; bob's choice is still there.
    page.wait_for_selector("#slot-detector .active-ref:text('yolo-tiny@2')")
    assert page.input_value("#select-classifier") == "stella/clf@3"
    page.click("#apply-changes")
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@3')")


def test_a_pending_choice_for_a_slot_switched_meanwhile_is_refused_naming_who(
    more_versions, staff, bob, stack, page
):
    from tests.conftest import make_token

    token = make_token(staff, name="deployer")
    stack.sync()
    log_in(page, "bob", "pw-bob")
    page.select_option("#select-classifier", "stella/clf@3")
    with stack.api(token) as api:
        assert api.post("/api/v1/switch", json={"classifier": "clf@2"}).status_code == 200
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@2')")
    assert page.input_value("#select-classifier") == "stella/clf@3"
    page.click("#apply-changes")
    refusal = page.wait_for_selector(".switch-result .msg.err").inner_text()
    assert "Switch refused:" in refusal and "changed by stella (token deployer)" in refusal
    assert Slot.objects.get(name="classifier").active_version.ref == "clf@2"


def test_each_switch_is_shown_in_its_own_box(more_versions, staff, bob, stack, page):
    from tests.conftest import make_token

    token = make_token(staff)
    stack.sync()
    log_in(page, "bob", "pw-bob")
    live_switch(page, "classifier", "stella/clf@2")
    with stack.api(token) as api:
        assert api.post("/api/v1/switch", json={"detector": "yolo-tiny@2"}).status_code == 200
    page.wait_for_selector("#switch-runs .run:nth-child(2)")
    newest, first = page.locator("#switch-runs .run").all()
    newest.locator(".switch-result .msg.ok").wait_for()
    assert "detector" in newest.locator("h3").inner_text()
    assert "stella (token robot)" in newest.inner_text()
    assert "classifier" not in newest.locator(".log").inner_text()
    assert "classifier" in first.locator("h3").inner_text() and "by bob" in first.inner_text()
    assert "detector" not in first.locator(".log").inner_text()
    assert "Switched" in first.locator(".switch-result").inner_text()


def test_after_a_server_restart_the_page_shows_the_slots_as_they_are(
    more_versions, staff, bob, stack, page
):
    from modelmgr.deploy.services import slots_switch

    stack.sync()
    log_in(page, "bob", "pw-bob")
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@1')")
    stack.web.proc.terminate()
    stack.web.proc.wait(timeout=20)
    page.wait_for_selector("#live-label:text('offline')")
    # A switch the page cannot hear of: its server is down.
    slots_switch(assignments={"classifier": "clf@2"}, actor=None)
    stack.web.restart()
    page.wait_for_selector("#live-dot.on", timeout=60_000)
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@2')")
