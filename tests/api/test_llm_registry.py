"""Language-model folders in the registry: detection at ingest, catalog, recommendation."""

from __future__ import annotations

import json
import shutil

import pytest

from modelmgr.models import AuditEvent, RegisteredModel
from tests.api.helpers import upload
from tests.llmfiles import build_tiny_llama, zip_folder

pytestmark = pytest.mark.django_db

URL = "/api/v1/models"


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("llama") / "tiny-llama")


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


# --- catalog fields and filters ------------------------------------------------------


def test_catalog_fields_default_from_the_weights_and_can_be_set(api, llama_dir, llama_zip):
    body = upload(api, "tiny-llama", llama_zip, version="1").json()
    count = _expected_params(llama_dir)
    assert body["parameter_count"] == count
    assert body["parameter_size"] == ("<0.1M" if count < 50_000 else "0.1M")
    assert body["family"] == "llama" and body["purpose"] == "" and body["recommended_use"] == ""
    given = upload(
        api,
        "tiny-llama",
        llama_zip,
        version="2",
        family="TinyLlama",
        purpose="speed",
        recommended_use="robot small talk",
        parameter_size="1.1b",
    ).json()
    assert given["family"] == "TinyLlama" and given["purpose"] == "speed"
    assert given["parameter_size"] == "1.1B"
    assert given["parameter_count"] == count  # the weights' count wins for filtering
    assert given["recommended_use"] == "robot small talk"


def test_catalog_fields_are_patched_and_bad_values_are_422(api, llama_zip, model_files, tmp_path):
    upload(api, "tiny-llama", llama_zip, version="1")
    one = f"{URL}/tiny-llama/versions/1"
    patched = api.patch(
        one, {"purpose": "quality", "family": "llama3"}, content_type="application/json"
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["purpose"] == "quality" and patched.json()["family"] == "llama3"
    bad = api.patch(one, {"purpose": "fastest"}, content_type="application/json")
    assert bad.status_code == 422 and "purpose" in bad.json()["detail"]
    bad = api.patch(one, {"parameter_size": "seven"}, content_type="application/json")
    assert bad.status_code == 422 and "parameter_size" in bad.json()["detail"]
    assert "version.update" in AuditEvent.objects.values_list("action", flat=True)
    # A file whose count is unknown takes its count from the given size.
    other = model_files.onnx(tmp_path / "m.onnx")
    upload(api, "remote", other, version="1")
    response = api.patch(
        f"{URL}/remote/versions/1", {"parameter_size": "7B"}, content_type="application/json"
    )
    assert response.status_code == 200
    detected = response.json()["inspection"].get("parameter_count")
    assert response.json()["parameter_count"] == (detected or 7_000_000_000)


def test_models_are_filtered_by_family_purpose_and_max_params(api, llama_zip):
    upload(api, "fast", llama_zip, family="llama", purpose="speed")
    upload(api, "big", llama_zip, family="qwen", purpose="quality", parameter_size="70B")
    api.patch(f"{URL}/big/versions/1", {}, content_type="application/json")

    def names(query: str) -> list[str]:
        response = api.get(f"{URL}?{query}")
        assert response.status_code == 200, response.content
        return sorted(m["name"] for m in response.json()["items"])

    assert names("family=LLAMA") == ["fast"]
    assert names("purpose=quality") == ["big"]
    assert names("max_params=1M") == ["big", "fast"]  # both hold the same tiny weights
    assert names("max_params=1000") == []
    assert names("family=qwen&purpose=speed") == []
    bad = api.get(f"{URL}?max_params=lots")
    assert bad.status_code == 422 and "max_params" in bad.json()["detail"]
    bad = api.get(f"{URL}?purpose=fastest")
    assert bad.status_code == 422 and "purpose" in bad.json()["detail"]


def test_the_models_page_filters_by_catalog_fields(client, owner, api, llama_zip):
    upload(api, "fast", llama_zip, family="llama", purpose="speed")
    upload(api, "other-family", llama_zip, family="qwen", purpose="quality")
    client.force_login(owner)
    page = client.get("/models?purpose=speed&family=llama&max_params=8B").content.decode()
    assert 'id="f-purpose"' in page and 'id="f-params"' in page
    assert ">fast<" in page and "other-family" not in page
    page = client.get("/models?max_params=huge").content.decode()
    assert "max_params" in page  # the refusal is shown, not a 500


# --- cannot delete what serves -------------------------------------------------------


def test_an_llm_version_a_slot_serves_cannot_be_deleted(api, llama_zip):
    from modelmgr.models import ModelVersion, Slot

    upload(api, "tiny-llama", llama_zip, version="1")
    version = ModelVersion.objects.get(model__name="tiny-llama", version="1")
    Slot.objects.create(name="chat", task="llm", active_version=version)
    response = api.delete(f"{URL}/tiny-llama/versions/1")
    assert response.status_code == 409, response.content
    assert "slot(s) chat serve it" in response.json()["detail"]
    response = api.delete(f"{URL}/tiny-llama")
    assert response.status_code == 409 and "chat" in response.json()["detail"]
    assert ModelVersion.objects.filter(pk=version.pk).exists()
    Slot.objects.filter(name="chat").update(active_version=None)
    assert api.delete(f"{URL}/tiny-llama/versions/1").status_code == 204


def _with_config(llama_dir, tmp_path, name: str, config: dict):
    folder = tmp_path / name
    shutil.copytree(llama_dir, folder)
    (folder / "config.json").write_text(json.dumps(config))
    return zip_folder(folder, tmp_path / f"{name}.zip")


def test_gpt2_style_config_keys_are_understood(api, llama_dir, tmp_path):
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_positions": 1024,
        "n_layer": 2,
        "n_head": 4,
        "n_embd": 32,
        "vocab_size": 92,
        "torch_dtype": "float16",
    }
    body = upload(api, "gpt", _with_config(llama_dir, tmp_path, "gpt", config)).json()
    llm = body["inspection"]["llm"]
    assert llm["architecture"] == "GPT2LMHeadModel" and llm["context_length"] == 1024
    assert llm["num_layers"] == 2 and llm["head_dim"] == 8 and llm["num_key_value_heads"] == 4
    assert llm["dtype"] == "float16" and body["family"] == "gpt2"


def test_a_config_without_context_falls_back_to_the_tokenizers_limit(api, llama_dir, tmp_path):
    config = json.loads((llama_dir / "config.json").read_text())
    del config["max_position_embeddings"]
    folder_zip = _with_config(llama_dir, tmp_path, "noctx", config)
    llm = upload(api, "noctx", folder_zip).json()["inspection"]["llm"]
    limit = json.loads((llama_dir / "tokenizer_config.json").read_text())["model_max_length"]
    assert llm["context_length"] == (limit if limit <= 10_000_000 else None)


def test_an_encoder_folder_is_not_a_language_model(api, llama_dir, tmp_path):
    config = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 92}
    body = upload(api, "enc", _with_config(llama_dir, tmp_path, "enc", config)).json()
    assert body["framework"] == "huggingface" and "llm" not in body["inspection"]
    assert RegisteredModel.objects.get(name="enc").task == "other"
