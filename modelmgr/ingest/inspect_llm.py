"""What a Hugging Face language-model folder says about itself, read from JSON only.

config.json, generation_config.json and tokenizer_config.json are parsed as data and the
parameter count comes from the safetensors headers (inspection.summarize): no code from
the folder runs and no weights are read. The result lands in ``inspection["llm"]``; the
registry's memory estimate and recommendation (modelmgr.registry.recommend) read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_SIDE_CONFIG_BYTES = 4 * 1024 * 1024
# Architectures that generate text left to right (GPT2LMHeadModel is the older spelling).
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
# Anything larger is a tokenizer's "no limit" sentinel (1e30), not a context length.
MAX_SANE_CONTEXT = 10_000_000
DTYPE_NAMES = {
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "float64": "float64",
}
# Bytes per weight, for the memory estimate; quantized formats override by bits.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1}


def is_causal_lm(architectures: list[str]) -> bool:
    return any(str(a).endswith(CAUSAL_SUFFIXES) for a in architectures)


def inspect_llm(
    config: dict, local: dict[str, Path], *, parameter_count: int, tensor_dtypes: list[str]
) -> tuple[dict[str, Any] | None, list[str]]:
    """Return (the ``llm`` summary or None when not a causal LM, notes)."""
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list):
        architectures = [str(architectures)]
    if not is_causal_lm(architectures):
        return None, []
    notes: list[str] = []
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}

    def pick(*keys: str):
        for source in (config, text):
            for key in keys:
                value = source.get(key)
                if _is_count(value):
                    return value
        return None

    tokenizer_config = _side_json(local, "tokenizer_config.json", notes)
    generation = _side_json(local, "generation_config.json", notes)
    context = pick(*CONTEXT_KEYS)
    if context is None:
        limit = tokenizer_config.get("model_max_length")
        context = limit if _is_count(limit) and limit <= MAX_SANE_CONTEXT else None
    heads = pick("num_attention_heads", "n_head")
    hidden = pick("hidden_size", "n_embd", "d_model")
    head_dim = pick("head_dim") or (hidden // heads if hidden and heads else None)
    llm = {
        "architecture": str(architectures[0]),
        "model_type": str(config.get("model_type") or ""),
        "parameter_count": parameter_count,
        "context_length": context,
        "vocab_size": pick("vocab_size"),
        "dtype": _dtype(config, text, tensor_dtypes),
        "quantization": _quantization(config),
        "chat_template": _has_chat_template(local, tokenizer_config),
        "hidden_size": hidden,
        "num_layers": pick("num_hidden_layers", "n_layer", "num_layers"),
        "num_attention_heads": heads,
        "num_key_value_heads": pick("num_key_value_heads", "num_kv_heads") or heads,
        "head_dim": head_dim,
        "eos_token_id": generation.get("eos_token_id", config.get("eos_token_id")),
    }
    return llm, notes


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _side_json(local: dict[str, Path], name: str, notes: list[str]) -> dict:
    """A secondary config file: a broken one is noted, not refused (config.json decides)."""
    path = local.get(name)
    if path is None:
        return {}
    if path.stat().st_size > MAX_SIDE_CONFIG_BYTES:
        notes.append(f"{name}: larger than {MAX_SIDE_CONFIG_BYTES} bytes, not read")
        return {}
    try:
        value = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        notes.append(f"{name}: not valid JSON ({exc}), ignored")
        return {}
    return value if isinstance(value, dict) else {}


def _dtype(config: dict, text: dict, tensor_dtypes: list[str]) -> str | None:
    """The config's dtype ("torch_dtype" before transformers 5, "dtype" since), else the
    weights' single floating dtype."""
    for source in (config, text):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if isinstance(value, str) and value.removeprefix("torch.") in DTYPE_NAMES:
                return DTYPE_NAMES[value.removeprefix("torch.")]
    floats = [d for d in tensor_dtypes if d.startswith(("float", "bfloat"))]
    return floats[0] if len(floats) == 1 else None


def _quantization(config: dict) -> dict | None:
    """{"method", "bits"} from quantization_config (GPTQ, AWQ, bitsandbytes, fp8...)."""
    quant = config.get("quantization_config")
    if not isinstance(quant, dict):
        return None
    method = str(quant.get("quant_method") or "unknown")
    bits = quant.get("bits") or quant.get("w_bit")
    if quant.get("load_in_4bit"):
        bits = 4
    elif quant.get("load_in_8bit"):
        bits = 8
    elif method == "fp8":
        bits = 8
    return {"method": method, "bits": bits if _is_count(bits) else None}


def _has_chat_template(local: dict[str, Path], tokenizer_config: dict) -> bool:
    if "chat_template.jinja" in local or "chat_template.json" in local:
        return True
    template = tokenizer_config.get("chat_template")
    return bool(template) and isinstance(template, str | list)


def quantization_label(quant: dict | None) -> str:
    """The version's ``quantization`` text when the uploader gave none: "gptq-4bit"."""
    if not quant:
        return ""
    bits = f"-{quant['bits']}bit" if quant.get("bits") else ""
    return f"{quant['method']}{bits}"[:32]
