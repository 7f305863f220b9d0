"""A health-gated switch in a real browser: an open /settings page sees the automatic
rollback live (the slot card's watch, the card's served version, a toast)."""

from __future__ import annotations

from modelmgr.models import Slot
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_token
from tests.deploy.test_watch_worker import Traffic
from tests.deploy.watchfiles import failing_version
from tests.inference.support import make_slot


def test_an_open_page_sees_a_failing_release_roll_back_by_itself(staff, stack, page, tmp_path):
    good = failing_version(staff, tmp_path, version="1", threshold=1e9, seed=0)
    failing_version(staff, tmp_path, version="2", threshold=0.5, seed=1)
    make_slot("svc", good, task="classifier")
    token = make_token(staff)
    stack.sync()
    log_in(page, "stella", "pw-stella")
    with Traffic(stack.worker.url) as traffic:
        traffic.wait_for_more(0, 20)
        with stack.api(token) as api:
            answer = api.post(
                "/api/v1/switch",
                json={
                    "slots": {"svc": "stella/svc@2"},
                    "watch": {"window_s": 60, "max_error_rate": 0.05, "min_requests": 10},
                },
            )
        assert answer.status_code == 200, answer.text
        # Pushed to the page: no reload, no click.
        page.wait_for_selector("#watch-svc[data-state='rolled_back']")
    card = page.locator("#slot-svc")
    assert "ROLLED BACK automatically" in card.inner_text()
    assert "error rate" in page.locator("#watch-svc .watch-verdict").inner_text()
    page.wait_for_selector("#slot-svc .active-ref:text('svc@1')")
    page.wait_for_selector("#toasts .toast:has-text('slot.rollback.auto')")
    screenshot(page, "settings-watch-rollback.png")
    assert Slot.objects.get(name="svc").active_version == good
