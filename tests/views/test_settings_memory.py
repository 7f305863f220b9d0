"""/settings: every version a slot may switch to shows the memory it needs (the figure the
worker's admission will check) and whether it fits the worker's free memory, before Apply."""

from __future__ import annotations

import re

import pytest
from django.template.defaultfilters import filesizeformat

from modelmgr.models import ModelVersion
from modelmgr.registry.memory_estimate import estimate_memory
from tests.api.helpers import upload
from tests.llmfiles import build_tiny_llama, zip_folder
from tests.views.support import serving_slot


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("llama-settings") / "tiny-llama")


@pytest.fixture
def llamas(api, llama_dir, tmp_path):
    """Two uploaded (so inspected) tiny Llama versions and an empty llm slot."""
    source = zip_folder(llama_dir, tmp_path / "tiny-llama.zip")
    for name in ("small", "other"):
        assert upload(api, name, source).status_code == 201
    serving_slot("chat", None, task="llm", contract={})
    return {v.model.name: v for v in ModelVersion.objects.select_related("model")}


def option_of(html: str, slot: str, value: str) -> str:
    select = re.search(
        rf'<select id="select-{slot}" name="slot-{slot}"[^>]*>(.*?)</select>', html, re.S
    )
    return re.search(rf'<option value="{re.escape(value)}"[^>]*>[^<]*</option>', select[1])[0]


def shown(need: int) -> str:
    return filesizeformat(need).replace("\xa0", " ")


@pytest.mark.django_db
def test_each_choice_shows_its_estimate_even_when_the_worker_is_down(
    owner_client, llamas, settings
):
    from tests.workerproc import free_port

    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    html = owner_client.get("/settings").content.decode()
    for name, version in llamas.items():
        need = estimate_memory(version).total_bytes
        option = option_of(html, "chat", f"olivia/{name}@1")
        assert f"needs {shown(need)})" in option and f'data-need-bytes="{need}"' in option
        assert 'data-fits="unknown"' in option and "KV cache" in option  # the how, as title
    assert "free memory is unknown" in html


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_fits_and_does_not_fit_are_judged_against_the_workers_free_memory(
    owner_client, llamas, settings
):
    from tests.deploy.live import live_worker

    with live_worker(settings) as worker:
        free = worker.client().get("/status").json()["memory"]["free_bytes"]
        html = owner_client.get("/settings").content.decode()
        option = option_of(html, "chat", "olivia/small@1")
        assert 'data-fits="yes"' in option and ", fits)" in option
        assert f"has <strong>{filesizeformat(free)}</strong> free" in html
        # KV cache for a million parallel generations: no worker has that.
        settings.MODELMGR_LLM_NUM_PARALLEL = 1_000_000
        html = owner_client.get("/settings").content.decode()
    option = option_of(html, "chat", "olivia/small@1")
    assert 'data-fits="no"' in option and "does NOT fit" in option
