"""The model page of a language model draws its generation charts in a real browser."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.deploy.support import llm_bucket_row, version_of

MINUTES = 20


def test_ttft_speed_and_token_charts_are_drawn(staff, stack, page):
    chat = version_of(staff, name="chat", task="llm")
    now = timezone.now().replace(second=0, microsecond=0)
    for ago in range(MINUTES, 0, -1):
        llm_bucket_row(
            chat,
            "assistant",
            now - timedelta(minutes=ago),
            ttfts=[30.0 + ago, 60.0],
            rates=[40.0 + ago, 45.0],
            prompt_tokens=100 + ago,
            completion_tokens=300,
        )
    log_in(page, "stella", "pw-stella")
    page.goto("/models/chat")
    for plot in ("ttft-plot", "speed-plot", "tokens-plot"):
        page.wait_for_selector(f"#{plot} .uplot")
        data = page.evaluate(f"document.getElementById('{plot}')._uplot.data")
        assert len(data) == 3 and len(data[0]) == MINUTES, plot
        assert all(v is not None and v > 0 for v in data[1]), plot
    generated = page.evaluate("document.getElementById('tokens-plot')._uplot.data[2]")
    assert generated == [300] * MINUTES
    row = page.inner_text("#llm-usage tbody tr")
    assert "assistant" in row and str(MINUTES * 300) in row and "tok/s" in row


def test_a_usage_section_that_cannot_be_read_says_so(staff, stack, page):
    """The section is fetched once the page is shown: when that fails, it says so
    instead of waiting forever."""
    version_of(staff, name="clf")
    log_in(page, "stella", "pw-stella")
    page.route("**/versions/1/usage", lambda route: route.fulfill(status=500, body="boom"))
    page.goto("/models/clf")
    expect(page.locator("#usage-panel")).to_have_text(
        "The usage could not be read (500): reload the page to try again."
    )
