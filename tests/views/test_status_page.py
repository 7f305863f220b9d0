"""/status: the worker's device, memory against its budget, and loaded models, live."""

from __future__ import annotations

import re

import pytest

from tests.views.conftest import HTMX
from tests.views.support import ingested, serving_slot
from tests.workerproc import free_port, start_worker


@pytest.mark.django_db
def test_an_unreachable_worker_is_shown_in_red_with_the_cause(owner_client, settings):
    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    html = owner_client.get("/status").content.decode()
    assert '<span class="badge err">unreachable</span>' in html
    assert "cannot connect" in html


@pytest.mark.django_db
def test_the_workers_region_is_pushed_and_polled_as_a_fallback(owner_client, settings):
    """Changes arrive over /ws/events/ (test_worker_state_live); the slow poll refreshes
    what is not pushed (in-flight counts, "last used ... ago")."""
    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    html = owner_client.get("/status", **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="workers">')
    assert "<nav" not in html and "workers-poll" not in html
    # The poll sits on a wrapper a live update never replaces: its timer runs on.
    page = owner_client.get("/status").content.decode()
    assert (
        '<div id="workers-poll" hx-get="/status" hx-trigger="every 10s" hx-target="#workers" '
        'hx-swap="outerHTML"'
    ) in page


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_running_worker_shows_device_memory_and_loaded_models(
    owner_client, owner, model_files, tmp_path, settings
):
    serving_slot("classifier", ingested(owner, model_files, tmp_path))
    with start_worker(env={"MODELMGR_WORKER_RAM_BUDGET_MB": "64"}) as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        html = owner_client.get("/status").content.decode()
    assert '<span class="badge ok">ready</span>' in html
    assert "<strong>cpu</strong>" in html and "CPUExecutionProvider" in html
    assert 'data-mem-budget="67108864"' in html and "of 64.0\xa0MB" in html
    assert "<code>clf@1</code>" in html and '<span class="badge ok">classifier</span>' in html
    assert 'id="memory-plot"' in html


def test_pinned_models_and_pins_that_could_not_load_are_shown():
    from django.template.loader import render_to_string

    from modelmgr.views.status import status_context

    model = {
        "version_id": 3,
        "ref": "keep@1",
        "runtime": "onnxruntime",
        "provider": "CPUExecutionProvider",
        "memory_bytes": 1024,
        "load_ms": 1.0,
        "warmup_ms": 1.0,
        "loaded_at": None,
        "last_used": None,
        "in_flight": 0,
        "pinned": True,
        "state": "ready",
        "slots": [],
    }
    status = {
        "worker_id": "w1",
        "pid": 1,
        "ready": True,
        "device": "cpu",
        "device_name": "test cpu",
        "memory": {"kind": "ram", "budget_bytes": 100 << 20, "used_bytes": 1024},
        "slots": {},
        "models": [model],
        "errors": {},
        "pin_errors": {"7": "big@1 needs 100 MB, 64 MB free of 64 MB budget"},
    }
    worker = {"url": "http://w", "reachable": True, "error": "", "status": status}
    html = render_to_string("status.html#workers", status_context([worker]))
    assert '<code>keep@1</code> <span class="badge info"' in html and ">pinned</span>" in html
    assert "<strong>pinned version 7:</strong> big@1 needs 100 MB" in html


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_memory_in_use_is_the_workers_measured_rss_not_its_artifact_sizes(
    owner_client, owner, model_files, tmp_path, settings
):
    """It showed the sum of artifact sizes (a few KB) while the worker held ~400 MB."""
    import psutil

    serving_slot("classifier", ingested(owner, model_files, tmp_path))
    with start_worker() as worker:
        worker.wait_ready()
        settings.MODELMGR_WORKER_URL = worker.url
        with worker.client() as client:
            status = client.get("/status").json()
        memory = status["memory"]
        rss = psutil.Process(worker.proc.pid).memory_info().rss
        html = owner_client.get("/status").content.decode()
    # Measured by the worker itself, within a few MB of what the OS says now.
    assert abs(memory["measured_bytes"] - rss) < 0.1 * rss
    assert memory["measured_bytes"] == memory["process_rss_bytes"] > 50 * 1024 * 1024
    assert memory["estimated_bytes"] < 1024 * 1024  # the tiny model's budgeted size
    (model,) = status["models"]
    assert isinstance(model["measured_bytes"], int)  # its own growth, measured at load
    assert "Worker process memory (RSS, measured)" in html
    # The bar and the chart's samples are the measured value (the page asked the worker
    # again, so a little more or less than the reading above).
    shown = int(re.search(r'data-mem-used="(\d+)"', html).group(1))
    assert abs(shown - memory["measured_bytes"]) < 0.1 * memory["measured_bytes"]
    assert "models budgeted: " in html and "(estimate)" in html


@pytest.mark.django_db
def test_loaded_language_models_are_listed_like_ollama_ps():
    from datetime import UTC, datetime, timedelta

    from django.template.loader import render_to_string

    from modelmgr.views.status import status_context

    def llm(ref, slots, kept_by, expires_at=None, keep_alive_s=300.0, vram=0):
        return {
            "version_id": len(ref),
            "ref": ref,
            "runtime": "transformers",
            "provider": "cpu",
            "memory_bytes": 3 << 20,
            "load_ms": 1.0,
            "warmup_ms": 1.0,
            "loaded_at": None,
            "last_used": None,
            "in_flight": 0,
            "pinned": kept_by == "pinned",
            "state": "ready",
            "slots": slots,
            "language_model": {
                "context_length": 4096,
                "device": "cuda:0" if vram else "cpu",
                "vram_bytes": vram,
                "keep_alive_s": keep_alive_s,
                "kept_by": kept_by,
                "expires_at": expires_at,
            },
        }

    soon = (datetime.now(UTC) + timedelta(minutes=4, seconds=30)).isoformat()
    status = {
        "worker_id": "w1",
        "pid": 1,
        "ready": True,
        "device": "cpu",
        "memory": {"kind": "ram", "budget_bytes": 100 << 20, "used_bytes": 1024},
        "slots": {},
        "models": [
            llm("chat-model@2", ["chat"], "slot"),
            llm("spare@1", [], "keep_alive", soon),
            llm("big@1", [], "forever", keep_alive_s=-1.0, vram=5 << 20),
        ],
        "errors": {},
        "pin_errors": {},
    }
    worker = {"url": "http://w", "reachable": True, "error": "", "status": status}
    html = render_to_string("status.html#workers", status_context([worker]))
    table = html[html.index('id="language-models"') :]
    rows = re.findall(r'<tr data-ref="([^"]+)">(.*?)</tr>', table, re.S)
    cells = {ref: re.sub(r"<[^>]+>|\s+", " ", body) for ref, body in rows}
    assert "until the slot changes" in cells["chat-model@2"] and "4096" in cells["chat-model@2"]
    assert "in 4" in cells["spare@1"] and "minutes" in cells["spare@1"]
    assert "keep-alive 5m" in cells["spare@1"] and "RAM" in cells["spare@1"]
    assert "forever" in cells["big@1"] and "5.0 MB VRAM" in cells["big@1"]
