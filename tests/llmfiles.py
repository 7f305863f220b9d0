"""A tiny real Llama causal language model with its tokenizer, built on the fly.

Random weights (its text is gibberish), a byte-level BPE tokenizer trained on a few
sentences: enough to load, stream and count tokens for real in well under a second.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a tiny language model",
    "models are served by slots and switched without downtime",
    "user: hi assistant: hello there how can I help",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_tiny_llama(
    folder: Path,
    *,
    chat_template: bool = True,
    seed: int = 0,
    hidden_size: int = 32,
    layers: int = 2,
) -> Path:
    """Save config.json, model.safetensors, tokenizer.json (and chat_template.jinja when
    ``chat_template``) into ``folder``. ``hidden_size``/``layers`` make it bigger (the
    benchmarks use a model whose token costs what a small real one's does)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SENTENCES * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    """The folder's files as make_version takes them (weights first: the primary)."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    return {"model.safetensors": files.pop("model.safetensors"), **files}


class LlamaFiles:
    """Builds each variant once per test session and copies it out on request."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir

    def folder(self, dest: Path, *, chat_template: bool = True, seed: int = 0) -> Path:
        cached = self.cache_dir / f"llama-t{int(chat_template)}-s{seed}"
        if not cached.exists():
            build_tiny_llama(cached, chat_template=chat_template, seed=seed)
        shutil.copytree(cached, dest, dirs_exist_ok=True)
        return dest


def zip_folder(folder: Path, dest: Path) -> Path:
    """The folder as a zip upload (paths relative to the folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    dest.write_bytes(buffer.getvalue())
    return dest
