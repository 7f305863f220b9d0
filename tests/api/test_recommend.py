"""POST /api/v1/recommend over HTTP: memory fit, purpose, measured usage, default memory."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from modelmgr.models import ModelVersion, UsageBucket
from tests.api.helpers import upload
from tests.llmfiles import build_tiny_llama, zip_folder

URL = "/api/v1/recommend"


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("llama-rec") / "tiny-llama")


@pytest.fixture
def llama_zip(llama_dir, tmp_path):
    return zip_folder(llama_dir, tmp_path / "tiny-llama.zip")


def ask(api, **body):
    return api.post(URL, body, content_type="application/json")


def usage(version: ModelVersion, *, count: int, errors: int, total_ms: float) -> None:
    UsageBucket.objects.create(
        version=version,
        slot_name="chat",
        minute=timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5),
        count=count,
        errors=errors,
        total_ms=total_ms,
        histogram=[],
    )


@pytest.mark.django_db
def test_versions_are_ranked_by_fit_purpose_and_measured_success(api, llama_zip):
    upload(api, "fast", llama_zip, purpose="speed", family="llama")
    upload(api, "flaky", llama_zip, purpose="speed", family="llama")
    upload(api, "careful", llama_zip, purpose="quality", family="llama")
    upload(api, "huge", llama_zip, purpose="speed", min_vram_mb="100000")
    usage(ModelVersion.objects.get(model__name="fast"), count=200, errors=0, total_ms=4000.0)
    usage(ModelVersion.objects.get(model__name="flaky"), count=200, errors=100, total_ms=2000.0)

    response = ask(api, task="llm", available_vram_gb=8, priority="speed")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["memory_source"] == "request" and body["available_bytes"] == 8 * 1024**3
    ranked = [item["model"] for item in body["items"]]
    assert ranked == ["fast", "careful", "flaky", "huge"]
    first = body["items"][0]
    assert first["fits"] is True and first["rank"] == 1
    reasons = " | ".join(first["reasons"])
    assert "fits: needs" in reasons and "KV cache" in reasons
    assert "purpose speed matches the priority" in reasons
    assert "200 requests, 100.0% succeeded, 20 ms mean" in reasons
    flaky = body["items"][2]
    assert flaky["success_rate"] == 0.5 and any("50.0% succeeded" in r for r in flaky["reasons"])
    huge = body["items"][3]
    assert huge["fits"] is False and huge["reasons"][0].startswith("does not fit: needs 97.66 GB")


@pytest.mark.django_db
def test_the_memory_estimate_decides_what_fits(api, llama_zip):
    upload(api, "tiny", llama_zip)
    estimate = ask(api, available_vram_gb=1).json()["items"][0]["estimated_bytes"]
    assert estimate > 0
    # Twice the context: the KV cache (and the estimate) grows.
    longer = ask(api, available_vram_gb=1, context_length=256, parallel=8).json()
    assert longer["items"][0]["estimated_bytes"] > estimate
    tight = ask(api, available_vram_gb=estimate / 2 / 1024**3).json()["items"][0]
    assert tight["fits"] is False and tight["reasons"][0].startswith("does not fit")


@pytest.mark.django_db
def test_other_tasks_and_other_owners_are_not_recommended(api, llama_zip, model_files, tmp_path):
    upload(api, "tiny", llama_zip)
    upload(api, "clf", model_files.onnx(tmp_path / "m.onnx"), task="classifier")
    assert [i["model"] for i in ask(api, available_vram_gb=4).json()["items"]] == ["tiny"]
    assert [
        i["model"] for i in ask(api, task="classifier", available_vram_gb=4).json()["items"]
    ] == ["clf"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"task": "poetry", "available_vram_gb": 8}, "task"),
        ({"priority": "cheap", "available_vram_gb": 8}, "priority"),
        ({"available_vram_gb": -1}, "available_vram_gb"),
        ({"available_vram_gb": "lots"}, "available_vram_gb"),
    ],
)
def test_bad_requests_are_422_naming_the_field(api, body, word):
    response = ask(api, **body)
    assert response.status_code == 422, response.content
    assert word in response.content.decode()


@pytest.mark.django_db
def test_without_memory_and_without_a_worker_it_is_a_clear_422(api, settings):
    from tests.workerproc import free_port

    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    response = ask(api, task="llm")
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert "available_vram_gb" in detail and "worker" in detail


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_default_memory_is_the_workers_free_memory(api, settings, llama_zip):
    from tests.deploy.live import live_worker

    upload(api, "tiny", llama_zip)
    with live_worker(settings) as worker:
        free = worker.client().get("/status").json()["memory"]["free_bytes"]
        response = ask(api, task="llm", priority="balanced")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["memory_source"] == "worker" and body["available_bytes"] == free
    assert body["items"][0]["model"] == "tiny" and body["items"][0]["fits"] is True


@pytest.mark.django_db
def test_recommend_is_documented_with_its_errors(api):
    schema = api.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/recommend"]["post"]
    for status in ("200", "401", "422"):
        assert status in operation["responses"]
    error = operation["responses"]["422"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorOut"}


@pytest.mark.django_db
def test_measured_tokens_per_second_ranks_language_models_and_is_stated(api, llama_zip):
    """Two equal candidates (same size and purpose, both reliable): the one that generates
    faster ranks first, and the reasons say so in tokens/s, not request latency (which
    favours the slower one here: its answers were shorter)."""
    from tests.deploy.support import llm_bucket_row

    upload(api, "swift", llama_zip, purpose="speed", family="llama")
    upload(api, "sluggish", llama_zip, purpose="speed", family="llama")
    minute = timezone.now() - timedelta(minutes=5)
    swift = ModelVersion.objects.get(model__name="swift")
    sluggish = ModelVersion.objects.get(model__name="sluggish")
    llm_bucket_row(swift, "chat", minute, ttfts=[50.0] * 20, rates=[80.0] * 20)
    llm_bucket_row(sluggish, "chat", minute, ttfts=[5.0] * 20, rates=[20.0] * 20)

    body = ask(api, task="llm", available_vram_gb=8, priority="speed").json()
    assert [item["model"] for item in body["items"]] == ["swift", "sluggish"]
    first, second = body["items"]
    assert first["tokens_per_s"] == 80.0 and second["tokens_per_s"] == 20.0
    assert first["ttft_ms"] == 50.0 and second["mean_ms"] < first["mean_ms"]
    reasons = " | ".join(first["reasons"])
    assert "20 requests, 100.0% succeeded, 80.0 tokens/s p50, 50 ms to first token p50" in reasons
    assert "speed: 80.0 tokens/s p50, 100% of the fastest measured" in reasons
    assert "ms mean" not in reasons
    assert any("25% of the fastest" in r for r in second["reasons"])
    # Balanced weighs speed too; quality does not.
    balanced = ask(api, task="llm", available_vram_gb=8, priority="balanced").json()
    assert balanced["items"][0]["model"] == "swift"
    quality = ask(api, task="llm", available_vram_gb=8, priority="quality").json()
    assert not any("of the fastest" in r for i in quality["items"] for r in i["reasons"])


def test_the_estimate_is_the_figure_the_workers_admission_computes(api, llama_zip, llama_dir):
    """One estimate (modelmgr.memory_need): the web's, from what inspection stored, equals
    the worker pool's, from config.json, for the worker's context and parallel setting."""
    import json

    from django.conf import settings

    from modelmgr.memory_need import llm_estimate

    upload(api, "tiny", llama_zip)
    shown = ask(api, available_vram_gb=1).json()["items"][0]["estimated_bytes"]
    config = json.loads((llama_dir / "config.json").read_text())
    admitted = llm_estimate(
        config,
        weights_bytes=1,
        parallel=settings.MODELMGR_LLM_NUM_PARALLEL,
        context=settings.MODELMGR_LLM_CONTEXT,
    )
    assert shown == admitted > 0
