"""/models filters in a real browser: the production-ready checkbox refilters both ways."""

from __future__ import annotations

from tests.browser.conftest import log_in
from tests.registry.factories import make_model, make_version

ROWS = "Array.from(document.querySelectorAll('#model-results tbody td strong'), e => e.textContent)"


def _names(page) -> list[str]:
    return page.evaluate(ROWS)


def test_ticking_and_unticking_production_ready_refilters_both_ways(staff, stack, page):
    ready = make_model(staff, "ready-net", task="detector", framework="onnx")
    make_version(ready, "1", framework="onnx", production_ready=True)
    draft = make_model(staff, "draft-net", task="detector", framework="onnx")
    make_version(draft, "1", framework="onnx")

    log_in(page, "stella", "pw-stella")
    page.goto("/models")
    page.wait_for_selector("#model-results td >> text=draft-net")
    assert _names(page) == ["draft-net", "ready-net"]
    refilters = []
    page.on(
        "request",
        lambda r: refilters.append(r.url) if r.headers.get("hx-request") == "true" else None,
    )

    page.check("#f-prod")
    page.wait_for_function(f"{ROWS}.join() === 'ready-net'")
    assert page.url.endswith("production_ready=1")

    # Unticking leaves the checkbox's .value at "1": htmx's `changed` alone ignored it.
    page.uncheck("#f-prod")
    page.wait_for_function(f"{ROWS}.join() === 'draft-net,ready-net'")
    assert "production_ready" not in page.url

    # And again: each tick and untick is one request (the input and change events a
    # click fires collapse into one through the shared delay), never a stale no-op.
    page.check("#f-prod")
    page.wait_for_function(f"{ROWS}.join() === 'ready-net'")
    page.uncheck("#f-prod")
    page.wait_for_function(f"{ROWS}.join() === 'draft-net,ready-net'")
    assert len(refilters) == 4, refilters
