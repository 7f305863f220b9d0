"""Language-model folders in the registry: detection at ingest, catalog, recommendation."""

from __future__ import annotations

import json
import shutil

import pytest

from modelmgr.models import AuditEvent, RegisteredModel
from tests.api.helpers import upload
from tests.llmfolder import build_llama, zip_folder

pytestmark = pytest.mark.django_db

URL = "/api/v1/models"


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return build_llama(tmp_path_factory.mktemp("llama") / "tiny-llama")


@pytest.fixture
def llama_zip(llama_dir, tmp_path):
    return zip_folder(llama_dir, tmp_path / "tiny-llama.zip")


def _expected_params(folder) -> int:
    # Independently of modelmgr: the tensor sizes the safetensors header declares.
    with (folder / "model.safetensors").open("rb") as fh:
        length = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(length))
    header.pop("__metadata__", None)
    total = 0
    for spec in header.values():
        n = 1
        for d in spec["shape"]:
            n *= d
        total += n
    return total


def test_a_llama_folder_is_detected_as_a_language_model(api, llama_dir, llama_zip):
    response = upload(api, "tiny-llama", llama_zip, version="1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["framework"] == "huggingface"
    llm = body["inspection"]["llm"]
    config = json.loads((llama_dir / "config.json").read_text())
    assert llm["architecture"] == "LlamaForCausalLM" and llm["model_type"] == "llama"
    assert llm["parameter_count"] == _expected_params(llama_dir) > 0
    assert llm["context_length"] == 256
    assert llm["vocab_size"] == config["vocab_size"]
    assert llm["dtype"] == "float32"
    assert llm["quantization"] is None and body["quantization"] == ""
    assert llm["chat_template"] is True
    assert llm["num_layers"] == 2 and llm["num_key_value_heads"] == 2 and llm["head_dim"] == 8
    # The model was registered without a task: the content says it is a language model.
    assert api.get(f"{URL}/tiny-llama").json()["task"] == "llm"
    event = AuditEvent.objects.get(action="version.create")
    assert event.after["model_task"] == "llm"


def test_quantization_and_a_missing_chat_template_are_reported(api, llama_dir, tmp_path):
    folder = tmp_path / "quant"
    shutil.copytree(llama_dir, folder)
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    del config["dtype"]
    config["torch_dtype"] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(config))
    response = upload(api, "quant-llama", zip_folder(folder, tmp_path / "q.zip"))
    assert response.status_code == 201, response.content
    body = response.json()
    llm = body["inspection"]["llm"]
    assert llm["quantization"] == {"method": "gptq", "bits": 4}
    assert body["quantization"] == "gptq-4bit"  # filled in when the uploader gave none
    assert llm["dtype"] == "bfloat16" and llm["chat_template"] is False


def test_an_explicit_task_is_kept(api, llama_zip):
    response = upload(api, "kept", llama_zip, task="other")
    assert response.status_code == 201, response.content
    assert RegisteredModel.objects.get(name="kept").task == "other"


def test_a_broken_tokenizer_config_is_noted_not_refused(api, llama_dir, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(llama_dir, folder)
    (folder / "tokenizer_config.json").write_text("{not json")
    response = upload(api, "broken", zip_folder(folder, tmp_path / "b.zip"))
    assert response.status_code == 201, response.content
    inspection = response.json()["inspection"]
    assert any("tokenizer_config.json" in note for note in inspection["notes"])
    assert inspection["llm"]["chat_template"] is True  # chat_template.jinja still there


def test_the_upload_report_and_model_page_show_the_language_model(client, owner, llama_zip):
    client.force_login(owner)
    with llama_zip.open("rb") as fh:
        report = client.post("/models/upload", {"file": fh, "name": "tiny-llama"})
    assert report.status_code == 200, report.content[:500]
    for page in (report.content.decode(), client.get("/models/tiny-llama").content.decode()):
        assert 'id="llm-facts"' in page
        assert "LlamaForCausalLM" in page and "256 tokens" in page
        assert "<dt>chat template</dt><dd>yes</dd>" in page
        facts = page.split('id="llm-facts"')[1].split("</dl>")[0]
        assert "M (" in facts  # the parameter count as "0.1M (12,345)"
