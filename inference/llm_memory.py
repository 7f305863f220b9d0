"""The memory a causal language model will take, from its config.json alone (no torch).

weights (parameters x dtype size) + KV cache (2 x layers x KV heads x head size x context
length x parallel generations x dtype size). The pool reserves this before the load, so a
model that cannot fit is refused with "needs X, Y free" before any byte is read.
"""

from __future__ import annotations

DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8}


def llm_dtype(config: dict, metadata: dict | None = None) -> str:
    """The dtype to run in: the version's metadata ``dtype`` wins, else the config's."""
    value = (metadata or {}).get("dtype") or config.get("torch_dtype") or config.get("dtype")
    name = str(value or "float32").removeprefix("torch.")
    return name if name in DTYPE_BYTES else "float32"


def llm_context(config: dict, configured: int) -> int:
    native = int(config.get("max_position_embeddings") or 2048)
    return min(configured, native) if configured > 0 else native


def llm_parameters(config: dict) -> int | None:
    """Parameters of a Llama-shaped decoder (embeddings, attention, gated MLP, norms)."""
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        vocab = int(config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    inter = int(config.get("intermediate_size") or 4 * hidden)
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * per_layer + hidden


def llm_estimate(
    config: dict,
    *,
    metadata: dict | None = None,
    weights_bytes: int = 0,
    parallel: int = 1,
    context: int = 0,
) -> int:
    size = DTYPE_BYTES[llm_dtype(config, metadata)]
    params = llm_parameters(config)
    weights = params * size if params else weights_bytes
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or int(config.get("hidden_size") or 0) // heads)
    layers = int(config.get("num_hidden_layers") or 0)
    kv = 2 * layers * kv_heads * head_dim * llm_context(config, context) * max(1, parallel) * size
    return int(weights + kv)
