"""How much memory a version needs to serve: the one estimate behind the worker's admission
(inference.pool) and the web's figures (/settings, POST /api/v1/recommend).

Pure Python (no Django models, no torch), so both processes import it. Rules, in order:

1. The uploader's ``min_vram_mb``, when given, is the need.
2. A causal language model: weights (parameters x bytes per weight: the dtype, or the
   quantization's bits) + KV cache (2 x layers x KV heads x head size x context x parallel
   generations x bytes per cached value). The worker reads the shape from config.json
   (``shape_from_config``), the web from what inspection stored (``shape_from_inspection``);
   both describe the same folder, so both get the same figure.
3. Anything else: the stored bytes x the worker's memory factor.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024
GB = 1024**3
DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
}
# What transformers assumes when a config gives no context length.
FALLBACK_CONTEXT = 2048


@dataclass(frozen=True)
class LlmShape:
    """What the estimate needs to know about a causal language model."""

    parameters: int | None
    dtype: str
    weight_bits: int | None  # a quantized model's bits per weight
    layers: int
    kv_heads: int
    head_dim: int
    native_context: int


@dataclass(frozen=True)
class MemoryNeed:
    total_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    context: int | None
    how: str  # in words, for the reasons and the pages


def _count(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _pick(config: dict, *keys: str) -> int | None:
    for key in keys:
        value = _count(config.get(key))
        if value:
            return value
    return None


def llm_dtype(config: dict, metadata: dict | None = None) -> str:
    """The dtype to run in: the version's metadata ``dtype`` wins, else the config's."""
    value = (metadata or {}).get("dtype") or config.get("torch_dtype") or config.get("dtype")
    name = str(value or "float32").removeprefix("torch.")
    return name if name in DTYPE_BYTES else "float32"


def context_window(native: int | None, configured: int | None) -> int:
    """The context the worker serves: the configured one (0 = the model's own), capped at
    the model's own."""
    native = native or FALLBACK_CONTEXT
    return min(configured, native) if configured and configured > 0 else native


def llm_context(config: dict, configured: int) -> int:
    return context_window(_pick(config, "max_position_embeddings", "n_positions"), configured)


def llm_parameters(config: dict) -> int | None:
    """Parameters of a Llama-shaped decoder (embeddings, attention, gated MLP, norms)."""
    hidden = _count(config.get("hidden_size"))
    layers = _count(config.get("num_hidden_layers"))
    heads = _count(config.get("num_attention_heads"))
    vocab = _count(config.get("vocab_size"))
    if not (hidden and layers and heads and vocab):
        return None
    kv_heads = _count(config.get("num_key_value_heads")) or heads
    head_dim = _count(config.get("head_dim")) or hidden // heads
    inter = _count(config.get("intermediate_size")) or 4 * hidden
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * per_layer + hidden


def _quantized_bits(quant) -> int | None:
    if not isinstance(quant, dict):
        return None
    if quant.get("load_in_4bit"):
        return 4
    if quant.get("load_in_8bit") or quant.get("quant_method") == "fp8":
        return 8
    return _count(quant.get("bits") or quant.get("w_bit"))


def shape_from_config(config: dict, metadata: dict | None = None) -> LlmShape:
    """The worker's view: config.json of the folder it loads."""
    heads = _pick(config, "num_attention_heads", "n_head") or 1
    hidden = _pick(config, "hidden_size", "n_embd") or 0
    return LlmShape(
        parameters=llm_parameters(config),
        dtype=llm_dtype(config, metadata),
        weight_bits=_quantized_bits(config.get("quantization_config")),
        layers=_pick(config, "num_hidden_layers", "n_layer") or 0,
        kv_heads=_pick(config, "num_key_value_heads") or heads,
        head_dim=_pick(config, "head_dim") or hidden // heads,
        native_context=_pick(config, "max_position_embeddings", "n_positions") or FALLBACK_CONTEXT,
    )


def shape_from_inspection(
    llm: dict, metadata: dict | None = None, *, parameters: int | None = None
) -> LlmShape:
    """The web's view: ``inspection["llm"]`` (modelmgr.ingest.inspect_llm) of the same folder."""
    dtype = str((metadata or {}).get("dtype") or llm.get("dtype") or "float32")
    dtype = dtype.removeprefix("torch.")
    quant = llm.get("quantization") or {}
    heads = _count(llm.get("num_attention_heads")) or 1
    return LlmShape(
        parameters=_count(llm.get("parameter_count")) or parameters,
        dtype=dtype if dtype in DTYPE_BYTES else "float32",
        weight_bits=_count(quant.get("bits")) if isinstance(quant, dict) else None,
        layers=_count(llm.get("num_layers")) or 0,
        kv_heads=_count(llm.get("num_key_value_heads")) or heads,
        head_dim=_count(llm.get("head_dim")) or 0,
        native_context=_count(llm.get("context_length")) or FALLBACK_CONTEXT,
    )


def llm_need(
    shape: LlmShape, *, weights_bytes: int = 0, parallel: int = 1, context: int = 0
) -> MemoryNeed:
    size = DTYPE_BYTES[shape.dtype]
    per_weight = shape.weight_bits / 8 if shape.weight_bits else size
    weights = int(shape.parameters * per_weight) if shape.parameters else weights_bytes
    window = context_window(shape.native_context, context)
    parallel = max(1, parallel)
    # A quantized model still caches keys and values in 16 bits at most.
    cache_size = min(size, 2) if shape.weight_bits else size
    kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * window * parallel * cache_size
    how = (
        f"weights {weights / GB:.2f} GB + KV cache {kv / GB:.2f} GB for {window} tokens"
        f" × {parallel} parallel"
    )
    return MemoryNeed(int(weights + kv), int(weights), int(kv), window, how)


def version_need(
    *,
    min_vram_mb: int | None,
    size_bytes: int,
    memory_factor: float,
    shape: LlmShape | None = None,
    parallel: int = 1,
    context: int = 0,
) -> MemoryNeed:
    """The memory a version needs (the rules in the module's docstring)."""
    if min_vram_mb:
        total = min_vram_mb * MB
        return MemoryNeed(total, total, 0, None, "min VRAM given")
    if shape is not None:
        return llm_need(shape, weights_bytes=size_bytes, parallel=parallel, context=context)
    total = int(size_bytes * memory_factor)
    return MemoryNeed(total, total, 0, None, f"stored size × {memory_factor:g}")


def llm_estimate(
    config: dict,
    *,
    metadata: dict | None = None,
    weights_bytes: int = 0,
    parallel: int = 1,
    context: int = 0,
) -> int:
    """The bytes a language model takes, from its config.json (the worker's admission)."""
    shape = shape_from_config(config, metadata)
    need = llm_need(shape, weights_bytes=weights_bytes, parallel=parallel, context=context)
    return need.total_bytes
