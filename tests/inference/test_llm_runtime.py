"""The causal language model runtime: a stored tiny Llama folder loads, warms up by
generating a token, and is admitted by the pool on an estimate from its config."""

from __future__ import annotations

import pytest

from inference.device import MB, DeviceInfo
from inference.errors import InsufficientMemory, LoadFailed
from inference.pool import READY, ModelPool
from inference.runtimes.llm import GenerationRequest
from inference.versions import version_spec_get
from modelmgr.memory_need import llm_estimate
from tests.inference.support import llm_version, registered
from tests.modelfiles import build_huggingface_folder
from tests.registry.factories import make_version

pytestmark = pytest.mark.django_db
CPU = DeviceInfo("cpu", "test cpu")


@pytest.fixture
def pool():
    pool = ModelPool(device=CPU, load_timeout=60)
    yield pool
    pool.close(timeout=5)


def load(pool, version):
    spec = version_spec_get(version_id=version.pk)
    return pool.load(spec, signature={})[0]


def test_a_stored_llama_folder_loads_warms_up_and_generates(pool, owner, llama_files, tmp_path):
    entry = load(pool, llm_version(owner, llama_files, tmp_path))
    model = entry.model
    assert entry.state == READY and entry.runtime == "transformers" and entry.warmup_ms > 0
    assert model.has_chat_template and model.context_length == 256 and model.dtype == "float32"
    tokens: list[int] = []
    count = model.generate(
        GenerationRequest(model.encode("hello world"), max_tokens=7, temperature=0), tokens.append
    )
    assert count == len(tokens) and 1 <= count <= 7
    # The budget counts the config's estimate: weights + KV cache for 2 parallel x 256.
    spec = entry.spec
    assert entry.memory_bytes == llm_estimate(spec.llm_config, parallel=2) > spec.size_bytes


def test_the_versions_metadata_dtype_wins_over_the_config(pool, owner, llama_files, tmp_path):
    version = llm_version(owner, llama_files, tmp_path, metadata={"dtype": "bfloat16"})
    entry = load(pool, version)
    model = entry.model
    assert model.dtype == "bfloat16" and str(model.model.dtype) == "torch.bfloat16"
    assert entry.memory_bytes == llm_estimate(
        entry.spec.llm_config, metadata={"dtype": "bfloat16"}, parallel=2
    )
    tokens: list[int] = []
    model.generate(
        GenerationRequest(model.encode("hi"), max_tokens=3, temperature=0), tokens.append
    )
    assert 1 <= len(tokens) <= 3


def test_the_estimate_counts_weights_and_the_kv_cache():
    config = {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
        "torch_dtype": "bfloat16",
    }
    weights = 8_030_261_248 * 2  # Llama 3 8B: 8.03 B parameters in bfloat16
    kv = 2 * 32 * 8 * 128 * 8192 * 2 * 2  # 2 parallel 8k contexts
    assert llm_estimate(config, parallel=2) == weights + kv
    assert llm_estimate(config, metadata={"dtype": "float32"}, parallel=1, context=1024) == (
        8_030_261_248 * 4 + 2 * 32 * 8 * 128 * 1024 * 4
    )


def test_a_language_model_that_does_not_fit_is_refused_before_loading(
    pool, owner, llama_files, tmp_path, settings
):
    settings.MODELMGR_LLM_NUM_PARALLEL = 4000  # a KV cache of ~1 GB
    version = llm_version(owner, llama_files, tmp_path)
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 64
    with pytest.raises(InsufficientMemory, match=r"^tiny-llama@1 needs \d+ MB, 64 MB free"):
        load(pool, version)
    assert pool.entries() == []
    assert pool.estimate(version_spec_get(version_id=version.pk)) > 64 * MB


def test_a_huggingface_folder_that_is_not_a_causal_lm_is_refused(pool, owner, tmp_path):
    folder = build_huggingface_folder(tmp_path / "mlp")
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    version = make_version(
        registered(owner, "mlp"),
        "1",
        files=files,
        primary="model.safetensors",
        framework="huggingface",
    )
    with pytest.raises(LoadFailed, match="not a causal language model .*TinyMLP"):
        load(pool, version)
