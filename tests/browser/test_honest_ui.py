"""What the pages say must be readable and true (issue 9): no Python reprs, refusals that
show, toasts that stay out of the way, and a console without errors on every page."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import log_in
from tests.conftest import make_token
from tests.views.support import ingested, serving_slot


@pytest.fixture
def served(staff, model_files, tmp_path, stack):
    version = ingested(staff, model_files, tmp_path, name="clf", version="1")
    serving_slot("classifier", version)
    stack.sync()
    return version


def _console(page) -> list[str]:
    """Every console error and uncaught exception the page produces from now on."""
    seen: list[str] = []
    page.on(
        "console",
        lambda msg: (
            seen.append(f"{msg.type}: {msg.text}")
            if msg.type == "error" or "htmx:" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: seen.append(f"pageerror: {exc}"))
    return seen


def _mark_production_ready(stack, token: str, ready: bool) -> None:
    with stack.api(token) as api:
        changed = api.patch("/api/v1/models/clf/versions/1", json={"production_ready": ready})
    assert changed.status_code == 200, changed.text


def test_pages_read_as_people_read_them_and_the_console_stays_clean(staff, served, stack, page):
    token = make_token(staff)
    console = _console(page)
    log_in(page, "stella", "pw-stella")

    page.goto("/models/clf")
    panel = page.inner_text("#version-panel")
    assert re.search(r"opset\s+ai\.onnx \d+\s", panel), panel
    for repr_text in ("{'", "[]", "{}", "None", "False", "True"):
        assert repr_text not in panel, (repr_text, panel)
    assert re.search(r"unsafe\s+no\s", panel) and re.search(r"external_data\s+—", panel), panel

    # A change made elsewhere pushes a toast and an audit row to every open page; this
    # page lists no audit rows, which htmx used to report as htmx:oobErrorNoTarget.
    _mark_production_ready(stack, token, True)
    page.wait_for_selector("#toasts .toast")
    page.goto("/models")
    assert "just now" in page.inner_text("#model-results")

    page.goto("/audit")
    rows = "document.querySelectorAll('#audit-rows-live tr[id]').length"
    before = page.evaluate(rows)
    _mark_production_ready(stack, token, False)
    page.wait_for_function(f"{rows} > {before}")  # pushed live, on top
    row = page.locator("#audit-rows-live tr:first-child")
    row.locator("summary").click()
    assert "production_ready: yes → no" in row.inner_text()
    assert "{'" not in page.inner_text("#audit-results")

    page.goto("/settings")
    _mark_production_ready(stack, token, True)
    page.wait_for_selector("#toasts .toast")
    assert console == [], console


def test_a_refused_model_delete_is_shown_not_hidden_in_the_closed_box(served, page):
    log_in(page, "stella", "pw-stella")
    page.goto("/models/clf")
    page.click("#delete-model summary")
    page.click("#confirm-delete-model")
    error = page.locator("#delete-model-error")
    error.wait_for(state="visible")
    assert "Not deleted" in error.inner_text() and "classifier" in error.inner_text()


@pytest.mark.parametrize("width", [1280, 420])
def test_toasts_stay_on_screen_and_off_the_apply_buttons(staff, served, stack, browser, width):
    context = browser.new_context(viewport={"width": width, "height": 800}, base_url=stack.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        log_in(page, "stella", "pw-stella")
        token = make_token(staff)
        for ready in (True, False, True, False, True, False):
            _mark_production_ready(stack, token, ready)
        page.wait_for_function("document.querySelectorAll('#toasts .toast').length >= 4")
        for button in ("#apply-top", "#apply-changes"):
            page.locator(button).scroll_into_view_if_needed()
            target = page.locator(button).bounding_box()
            for toast in page.locator("#toasts .toast:visible").all():
                box = toast.bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
                assert box["y"] >= 0 and box["y"] + box["height"] <= 800, box
                overlap = not (
                    box["x"] + box["width"] <= target["x"]
                    or target["x"] + target["width"] <= box["x"]
                    or box["y"] + box["height"] <= target["y"]
                    or target["y"] + target["height"] <= box["y"]
                )
                assert not overlap, (button, box, target)
    finally:
        context.close()
