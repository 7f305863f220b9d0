"""The chat playground in a real browser: on an llm slot's card and on the model page, a
reply from a tiny real Llama streams in token by token through the web's relay, with
the time to first token and tokens/s shown; the conversation carries over turns; Stop
ends a generation; a version without a chat template completes text and says so."""

from __future__ import annotations

import json
import re

import pytest

from modelmgr.ingest.services import incoming_from_local_path, version_create
from modelmgr.models import RegisteredModel
from tests.browser.conftest import log_in, screenshot
from tests.views.support import serving_slot

CARD = "#slot-chat [data-playground]"


def llama(owner, llama_files, tmp_path, name: str, *, chat_template: bool = True):
    """A tiny real Llama through the real ingest path (so it is inspected: task llm)."""
    folder = llama_files.folder(tmp_path / name, chat_template=chat_template)
    model = RegisteredModel.objects.create(owner=owner, name=name, task="llm")
    return version_create(
        model=model, actor=owner, files=incoming_from_local_path(folder), version="1"
    )


@pytest.fixture
def served_llms(staff, llama_files, tmp_path, stack):
    chat = llama(staff, llama_files, tmp_path, "tiny-llama")
    plain = llama(staff, llama_files, tmp_path, "plain", chat_template=False)
    serving_slot("chat", chat, task="llm", contract={})
    serving_slot("plain", plain, task="llm", contract={})
    stack.sync()
    return chat, plain


def watch_text(page, selector: str) -> None:
    """Record every distinct text the element shows (a MutationObserver in the page)."""
    page.evaluate(
        """(selector) => {
            window.seenTexts = [];
            const log = document.querySelector(selector);
            new MutationObserver(() => {
                const turns = log.querySelectorAll('.pg-assistant .pg-text');
                const text = turns.length ? turns[turns.length - 1].textContent : '';
                if (text && window.seenTexts[window.seenTexts.length - 1] !== text) {
                    window.seenTexts.push(text);
                }
            }).observe(log, {subtree: true, childList: true, characterData: true});
        }""",
        selector,
    )


def test_a_reply_streams_into_the_slot_card_with_ttft_and_tokens_per_second(served_llms, page):
    log_in(page, "stella", "pw-stella")
    bodies: list[dict] = []
    page.on(
        "request",
        lambda r: bodies.append(json.loads(r.post_data)) if "/playground/" in r.url else None,
    )
    box = page.locator(CARD)
    box.locator("summary").click()
    watch_text(page, CARD + " .pg-log")
    box.locator(".pg-max").fill("40")
    box.locator(".pg-temperature").fill("0")  # greedy: the same reply every run
    box.locator(".pg-input").fill("hello")
    box.locator(".pg-send").click()
    # Finished: the Send button is back and the reply is no longer streaming.
    page.wait_for_selector(CARD + ":not(.pg-busy) .pg-assistant:not(.pg-streaming)")
    reply = box.locator(".pg-assistant .pg-text").last.inner_text()
    seen = page.evaluate("window.seenTexts")
    assert len(seen) > 1, seen  # the text arrived in more than one step
    assert seen[-1] == reply and all(reply.startswith(step) for step in seen)
    assert re.fullmatch(r"\d+ ms", box.locator(".pg-ttft").inner_text())
    assert re.fullmatch(r"\d+\.\d", box.locator(".pg-rate").inner_text())
    assert int(box.locator(".pg-tokens").inner_text()) > 1
    # The second turn sends the whole conversation through the chat template.
    box.locator(".pg-input").fill("and again")
    box.locator(".pg-send").click()
    page.wait_for_function(
        f"document.querySelectorAll('{CARD} .pg-assistant:not(.pg-streaming)').length == 2"
    )
    assert [m["role"] for m in bodies[1]["messages"]] == ["user", "assistant", "user"]
    assert bodies[1]["messages"][1]["content"] == reply
    assert bodies[1]["model"] == "chat" and bodies[1]["stream"] is True
    screenshot(page, "playground-slot-card.png", full_page=False)


def test_stop_ends_the_generation_and_plain_versions_complete_text(served_llms, page):
    log_in(page, "stella", "pw-stella")
    box = page.locator("#slot-plain [data-playground]")
    box.locator("summary").click()
    assert "no chat template" in box.inner_text()
    box.locator(".pg-max").fill("240")
    box.locator(".pg-temperature").fill("0")
    box.locator(".pg-input").fill("hello")
    # The tiny model writes 240 tokens in a fraction of a second; a slow link
    # (Chromium's own throttling) keeps the stream arriving long enough for
    # the click to land mid-generation instead of racing the model.
    slow_link = page.context.new_cdp_session(page)
    slow_link.send("Network.enable")
    slow_link.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": 1500, "uploadThroughput": -1},
    )
    box.locator(".pg-send").click()
    page.wait_for_function("document.querySelector('#slot-plain .pg-tokens').textContent !== '0'")
    box.locator(".pg-stop").click()
    page.wait_for_selector("#slot-plain [data-playground]:not(.pg-busy)")
    assert "stopped by you" in box.locator(".pg-finish").inner_text()
    assert int(box.locator(".pg-tokens").inner_text()) < 240


def test_the_model_page_has_the_playground_of_a_served_version(served_llms, page):
    log_in(page, "stella", "pw-stella")
    page.goto("/models/tiny-llama")
    box = page.locator("#version-playground [data-playground]")
    box.locator(".pg-input").fill("hello")
    box.locator(".pg-input").press("Enter")
    page.wait_for_selector(
        "#version-playground [data-playground]:not(.pg-busy) .pg-assistant:not(.pg-streaming)"
    )
    assert box.locator(".pg-assistant .pg-text").inner_text()
    assert re.fullmatch(r"\d+ ms", box.locator(".pg-ttft").inner_text())
    assert not box.locator(".pg-error").is_visible()
