"""Ollama's model lifecycle on the serving port, with the official ``ollama`` client
against a real worker subprocess: on-demand loading of registry versions, keep_alive
(the version's, the request's, the load/unload idiom), /api/ps's expiry, /api/pull as
a URL import and /api/delete through the registry's delete."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import ollama
import openai
import pytest

from modelmgr.models import AuditEvent, DownloadJob, ModelVersion
from tests.imports.server import FileServer
from tests.inference.serving.conftest import LLM_ENV, token
from tests.inference.serving.test_openai import HELLO
from tests.inference.support import eventually, llm_version, make_slot
from tests.llmfiles import zip_folder
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
OPTIONS = {"num_predict": 3, "temperature": 0}


def client_for(worker, raw: str) -> ollama.Client:
    return ollama.Client(host=worker.serve_url, headers={"Authorization": f"Bearer {raw}"})


def running(client: ollama.Client) -> dict:
    return {m.model: m for m in client.ps().models}


def seconds_left(model) -> float:
    return (model.expires_at - datetime.now(UTC)).total_seconds()


@pytest.fixture
def lifecycle_worker(owner, llama_files, tmp_path):
    """Slot chat serves tiny-llama@1; spare@1 (default keep-alive), brief@1 (its own
    keep-alive: 1 s) and huge@1 (declares more memory than any budget) no slot serves."""
    make_slot("chat", llm_version(owner, llama_files, tmp_path))
    llm_version(owner, llama_files, tmp_path, name="spare")
    llm_version(owner, llama_files, tmp_path, name="brief", keep_alive_s=1.0)
    llm_version(owner, llama_files, tmp_path, name="huge", min_vram_mb=10**9)
    with start_worker(env={**LLM_ENV, "MODELMGR_LLM_KEEP_ALIVE": "5m"}) as worker:
        worker.wait_ready()
        yield worker


def test_registry_versions_load_on_demand_and_expire_by_keep_alive(lifecycle_worker, owner):
    client = client_for(lifecycle_worker, token(owner))
    listed = [m.model for m in client.list().models]
    assert listed[0] == "chat" and {"spare@1", "brief@1", "tiny-llama@1"} <= set(listed)
    # Only the slot's model is loaded; a slot keeps it: Ollama's "never" (~292 years).
    assert list(running(client)) == ["chat"]
    assert running(client)["chat"].expires_at.year > 2200

    # A registry version no slot serves is loaded by the request, then kept for the
    # default keep-alive (MODELMGR_LLM_KEEP_ALIVE, 5m).
    answer = client.generate(model="spare@1", prompt="hello", options=OPTIONS, stream=False)
    assert answer.done and answer.eval_count >= 1
    spare = running(client)["spare@1"]
    assert 280 < seconds_left(spare) <= 300
    # Ollama's name:tag works too, and chat streams from the same loaded copy.
    parts = list(client.chat(model="spare:1", messages=HELLO, options=OPTIONS, stream=True))
    assert parts[-1].done
    # keep_alive 0: unloaded as soon as the request is done.
    client.generate(model="spare@1", prompt="hello", options=OPTIONS, keep_alive=0)
    assert "spare@1" not in running(client)

    # The load idiom: an empty prompt loads; the request's keep_alive sets the expiry.
    loaded = client.generate(model="spare@1", keep_alive="1h")
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    assert 3500 < seconds_left(running(client)["spare@1"]) <= 3600
    client.generate(model="spare@1", keep_alive=-1)  # negative: kept until unloaded
    assert running(client)["spare@1"].expires_at.year > 2200
    unloaded = client.chat(model="spare@1", messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload" and "spare@1" not in running(client)

    # A slot's model stays loaded whatever keep_alive says: the database decides.
    kept = httpx.post(
        lifecycle_worker.serve_url + "/api/generate",
        json={"model": "chat", "keep_alive": 0, "stream": False},
        headers=client._client.headers,
    ).json()
    assert kept["done_reason"] == "unload" and "a slot serves it" in kept["note"]
    assert "chat" in running(client)

    # A version's own keep-alive (1 s): idle that long, it is unloaded by the worker.
    client.generate(model="brief", prompt="hi", options=OPTIONS, stream=False)
    assert 0 < seconds_left(running(client)["brief@1"]) <= 1
    eventually(lambda: "brief@1" not in running(client), limit=15, what="brief@1 expiring")
    assert list(running(client)) == ["chat"]


def test_on_demand_refusals_name_the_reason(lifecycle_worker, owner):
    client = client_for(lifecycle_worker, token(owner))
    with pytest.raises(ollama.ResponseError) as too_big:
        client.generate(model="huge@1", prompt="hi", stream=False)
    assert too_big.value.status_code == 507
    assert "huge@1 needs" in too_big.value.error and "free" in too_big.value.error
    with pytest.raises(ollama.ResponseError) as unknown:
        client.generate(model="nothing@3", prompt="hi", stream=False)
    assert unknown.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as bad:
        client.generate(model="spare@1", prompt="hi", keep_alive="five minutes")
    assert bad.value.status_code == 400 and "not a duration" in bad.value.error
    limited = client_for(lifecycle_worker, token(owner, slots=("chat",), name="chat-only"))
    with pytest.raises(ollama.ResponseError) as forbidden:
        limited.generate(model="spare@1", prompt="hi", stream=False)
    assert forbidden.value.status_code == 403
    assert "limited to slot(s) chat" in forbidden.value.error
    assert [m.model for m in limited.list().models] == ["chat"]
    assert "spare@1" not in running(client) and "huge@1" not in running(client)
    # Ollama clients may add ":latest" to a slot's name; show describes without loading.
    assert "chat" in client.show("chat:latest").capabilities
    assert "spare@1" not in running(client) and client.show("spare@1").modelfile


def test_openai_routes_load_registry_versions_on_demand_too(lifecycle_worker, owner):
    """The OpenAI routes resolve ``model`` as the Ollama routes do: a registry version no
    slot serves is loaded by the request, under the same admission, and kept alive."""
    raw = token(owner)
    client = openai.OpenAI(
        base_url=lifecycle_worker.serve_url + "/v1", api_key=raw, max_retries=0, timeout=60
    )
    listed = [m.id for m in client.models.list()]
    assert listed[0] == "chat" and {"spare@1", "brief@1"} <= set(listed)
    assert "spare@1" not in running(client_for(lifecycle_worker, raw))
    stream = client.chat.completions.create(
        model="spare@1", messages=HELLO, max_tokens=3, temperature=0, stream=True
    )
    chunks = list(stream)
    assert chunks and all(c.model == "spare@1" for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    spare = running(client_for(lifecycle_worker, raw))["spare@1"]
    assert 280 < seconds_left(spare) <= 300  # the default keep-alive runs from now
    with pytest.raises(openai.APIStatusError) as too_big:
        client.completions.create(model="huge@1", prompt="hi", max_tokens=2)
    assert too_big.value.status_code == 507 and "huge@1 needs" in too_big.value.message
    limited = openai.OpenAI(
        base_url=lifecycle_worker.serve_url + "/v1",
        api_key=token(owner, slots=("chat",), name="chat-only"),
        max_retries=0,
    )
    with pytest.raises(openai.PermissionDeniedError, match="limited to slot"):
        limited.completions.create(model="spare@1", prompt="hi", max_tokens=2)


@pytest.fixture
def files(import_server, llama_files, tmp_path):
    folder = llama_files.folder(tmp_path / "pull-src")
    data = zip_folder(folder, tmp_path / "tiny.zip").read_bytes()
    import_server.add("/tiny-llm.zip", data)
    import_server.add("/pulled/2.zip", data)
    return import_server


@pytest.fixture
def import_server():
    server = FileServer().start()
    yield server
    server.stop()


@pytest.fixture
def registry_worker(owner, llama_files, tmp_path, files):
    make_slot("chat", llm_version(owner, llama_files, tmp_path))
    llm_version(owner, llama_files, tmp_path, name="spare")
    env = {
        **LLM_ENV,
        "MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS": "127.0.0.1:*",
        "MODELMGR_IMPORT_PROGRESS_INTERVAL": "0",
        "MODELMGR_STREAM_CHUNK_BYTES": "16384",
        "MODELMGR_PULL_URL": files.url("/{name}/{tag}.zip"),
    }
    with start_worker(env=env) as worker:
        worker.wait_ready()
        yield worker


def staged(root) -> list[str]:
    staging = root / ".staging"
    return sorted(p.name for p in staging.rglob("*") if p.is_file()) if staging.exists() else []


def test_pull_imports_with_progress_and_delete_removes(registry_worker, owner, files, settings):
    writer = client_for(registry_worker, token(owner, scopes=("read", "write"), name="rw"))
    reader = client_for(registry_worker, token(owner, name="ro"))
    url = files.url("/tiny-llm.zip")

    progress = list(writer.pull(url, stream=True))
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    downloading = [p for p in progress if p.status.startswith("downloading")]
    assert downloading and downloading[-1].completed == downloading[-1].total > 0
    assert all(p.completed <= p.total for p in downloading)
    pulled = ModelVersion.objects.get(model__name="tiny-llm")
    assert pulled.model.task == "llm" and pulled.status == "available"
    # What was pulled is usable at once, on demand.
    assert writer.generate(model="tiny-llm", prompt="hi", options=OPTIONS, stream=False).done
    # name:tag through MODELMGR_PULL_URL, answered once.
    once = writer.pull("pulled:2", stream=False)
    assert once.status == "success" and ModelVersion.objects.filter(version="2").exists()

    # Refusals: a read-only token, a refused host, a failed download. Nothing is left.
    versions = ModelVersion.objects.count()
    with pytest.raises(ollama.ResponseError) as read_only:
        reader.pull(url, stream=False)
    assert read_only.value.status_code == 403 and "'write' scope" in read_only.value.error
    with pytest.raises(ollama.ResponseError) as refused:
        writer.pull("http://10.1.2.3/model.zip", stream=False)
    assert refused.value.status_code == 422 and "refused" in refused.value.error
    for stream in (False, True):
        with pytest.raises(ollama.ResponseError) as missing:
            result = writer.pull(files.url("/missing.zip"), stream=stream)
            if stream:
                list(result)
        assert missing.value.status_code == 422 and "404" in missing.value.error
    raw = httpx.post(
        registry_worker.serve_url + "/api/pull",
        json={"model": "ftp://example.com/x.zip"},
        headers={"Authorization": f"Bearer {token(owner, scopes=('read', 'write'), name='h')}"},
    )
    assert raw.status_code == 400 and raw.json()["error"] == raw.json()["detail"]
    assert ModelVersion.objects.count() == versions
    assert staged(settings.ARTIFACT_ROOT) == []
    assert not DownloadJob.objects.filter(state__in=("queued", "running")).exists()

    # Delete: the registry's delete, audited; refused for what a slot serves.
    writer.generate(model="spare@1", keep_alive=-1)  # loaded in the worker's cache
    assert writer.delete("spare@1").status == "success"
    assert not ModelVersion.objects.filter(model__name="spare").exists()
    assert "spare@1" not in running(writer)
    audit = AuditEvent.objects.filter(action="version.delete").latest("pk")
    assert audit.target.endswith("spare@1") and "token rw" in audit.actor_label
    with pytest.raises(ollama.ResponseError) as serving:
        writer.delete("tiny-llama@1")
    assert serving.value.status_code == 409 and "slot(s) chat serve it" in serving.value.error
    with pytest.raises(ollama.ResponseError) as gone:
        writer.delete("spare@1")
    assert gone.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as no_write:
        reader.delete("tiny-llama@1")
    assert no_write.value.status_code == 403
    assert ModelVersion.objects.filter(model__name="tiny-llama").exists()
