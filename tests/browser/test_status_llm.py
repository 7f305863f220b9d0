"""/status lists the loaded language models like ``ollama ps``, live: a model loaded on
demand through the Ollama API appears with its keep-alive expiry, and disappears when
unloaded, without reloading the page."""

from __future__ import annotations

import re

import ollama
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_token
from tests.inference.support import llm_version, make_slot


@pytest.fixture
def llms(staff, llama_files, tmp_path, stack):
    make_slot("chat", llm_version(staff, llama_files, tmp_path))
    llm_version(staff, llama_files, tmp_path, name="spare")
    stack.sync()


def test_status_shows_loaded_language_models_live(llms, staff, stack, page):
    log_in(page, "stella", "pw-stella")
    page.goto("/status")
    rows = page.locator("#language-models tbody tr[data-ref]")
    chat = page.locator('#language-models tr[data-ref="tiny-llama@1"]')
    assert chat.locator(".until").inner_text() == "until the slot changes"
    assert rows.count() == 1

    client = ollama.Client(
        host=stack.worker.serve_url, headers={"Authorization": f"Bearer {make_token(staff)}"}
    )
    client.generate(model="spare@1", keep_alive="1h")  # Ollama's load idiom
    spare = page.locator('#language-models tr[data-ref="spare@1"]')
    spare.wait_for()  # pushed live: no reload
    # The row may first show the default keep-alive: the model is listed as soon as it is
    # loaded, and the request's keep_alive lands a state poll (50 ms) later, pushed too.
    expect(spare.locator(".until")).to_have_text(
        re.compile(r"^in 59\s+minutes.*\(keep-alive 1h\)"), timeout=5000
    )
    assert "RAM" in spare.inner_text() and "256" in spare.inner_text()
    screenshot(page, "status-language-models.png")

    client.generate(model="spare@1", keep_alive=0)  # and the unload idiom
    spare.wait_for(state="detached")
    assert rows.count() == 1
