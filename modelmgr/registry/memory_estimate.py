"""How much memory a version needs to serve, from what inspection read (no loading).

A language model: parameters × bytes per weight (the dtype, or the quantization's
bits) plus the KV cache (2 × layers × KV heads × head size × context × parallel
sequences × bytes per cached value), plus OVERHEAD for activations and the runtime.
Anything else: the uploader's min_vram_mb, else the stored bytes plus OVERHEAD.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelmgr.ingest.inspect_llm import DTYPE_BYTES
from modelmgr.models import ModelVersion

MB = 1024 * 1024
GB = 1024**3
OVERHEAD = 0.10
# Ollama's default context window: a 128k-context model is not sized for 128k tokens
# unless the caller asks for it.
DEFAULT_CONTEXT = 4096


@dataclass(frozen=True)
class MemoryEstimate:
    total_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    context: int | None
    how: str  # in words, for the reasons


def estimate_memory(
    version: ModelVersion, *, context: int | None = None, parallel: int = 1
) -> MemoryEstimate:
    llm = (version.inspection or {}).get("llm") or {}
    declared = (version.min_vram_mb or 0) * MB
    params = llm.get("parameter_count") or version.parameter_count
    if not llm or not params:
        base = max(declared, int(version.size_bytes * (1 + OVERHEAD)))
        how = "min VRAM given" if declared >= base and declared else "stored size + 10 %"
        return MemoryEstimate(base, base, 0, None, how)
    dtype_bytes = DTYPE_BYTES.get(llm.get("dtype") or "", 2)
    quant = llm.get("quantization") or {}
    weight_bytes = quant["bits"] / 8 if quant.get("bits") else dtype_bytes
    weights = int(params * weight_bytes)
    window = min(context or DEFAULT_CONTEXT, llm.get("context_length") or DEFAULT_CONTEXT)
    layers, kv_heads, head_dim = (
        llm.get("num_layers"),
        llm.get("num_key_value_heads"),
        llm.get("head_dim"),
    )
    kv = 0
    if layers and kv_heads and head_dim:
        cache_bytes = min(dtype_bytes, 2) if quant else dtype_bytes
        kv = 2 * layers * kv_heads * head_dim * window * max(parallel, 1) * cache_bytes
    total = max(int((weights + kv) * (1 + OVERHEAD)), declared)
    how = (
        f"weights {weights / GB:.2f} GB + KV cache {kv / GB:.2f} GB for {window} tokens"
        f" × {max(parallel, 1)} + 10 %"
    )
    return MemoryEstimate(total, weights, kv, window, how)
