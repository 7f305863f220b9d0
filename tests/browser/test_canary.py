"""A canary from the slot's card in a real browser: set it, watch the arms' figures grow
as robots call the slot, promote it."""

from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, Slot
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_token
from tests.views.support import ingested, serving_slot


@pytest.fixture
def deployed(staff, model_files, tmp_path):
    v1 = ingested(staff, model_files, tmp_path, version="1")
    v2 = ingested(staff, model_files, tmp_path, version="2", seed=1)
    return {"v1": v1, "v2": v2, "slot": serving_slot("classifier", v1)}


def robots_call(stack, token: str, count: int) -> set[str]:
    answered = set()
    with stack.api(token) as api:
        for n in range(count):
            answer = api.post(
                "/api/v1/slots/classifier/predict",
                json={"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}},
                headers={"X-Client-Key": f"robot-{n}"},
            )
            assert answer.status_code == 200, answer.text
            answered.add(answer.json()["model"])
    return answered


def test_set_a_canary_watch_its_arm_and_promote_it(deployed, staff, stack, page):
    token = make_token(staff)
    stack.sync()
    log_in(page, "stella", "pw-stella")
    page.click("#canary-classifier summary")
    page.select_option("#canary-version-classifier", "stella/clf@2")
    page.fill("#canary-share-classifier", "50")
    page.click("#canary-set-classifier")
    page.wait_for_selector("#switch-status .msg.ok:has-text('clf@2 answers 50.0% of the')")
    # The card now says so, and shows the arms side by side, refreshing by itself.
    page.wait_for_selector("#canary-classifier summary:has-text('canary clf@2 at 50%')")
    page.wait_for_selector("#arms-classifier tr[data-arm='canary']")
    assert robots_call(stack, token, 40) == {"clf@1", "clf@2"}
    page.wait_for_function(
        """() => [...document.querySelectorAll('#arms-classifier .arm-requests')]
                 .reduce((sum, td) => sum + Number(td.textContent), 0) >= 40"""
    )
    canary_requests = int(page.inner_text("#arms-classifier tr[data-arm='canary'] .arm-requests"))
    assert 0 < canary_requests < 40
    screenshot(page, "settings-canary.png")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#canary-promote-classifier")
    page.wait_for_selector("#switch-status .msg.ok:has-text('Promoted on classifier')")
    page.wait_for_selector("#slot-classifier .active-ref:text('clf@2')")
    assert robots_call(stack, token, 10) == {"clf@2"}
    slot = Slot.objects.get(name="classifier")
    assert slot.active_version == deployed["v2"] and slot.previous_version == deployed["v1"]
    assert slot.canary_version is None
    assert list(
        AuditEvent.objects.filter(action__in=["slot.canary", "slot.promote"])
        .order_by("pk")
        .values_list("action", "actor_label")
    ) == [("slot.canary", "stella"), ("slot.promote", "stella")]
