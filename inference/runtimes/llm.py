"""Hugging Face causal language models (a folder with config.json, safetensors weights and
tokenizer.json) run with transformers; imported only here, on first use, in the worker.

Generation runs in a thread of its own per request (``model.generate``); a streamer hands
each new token to the caller's callback as it comes, and a stopping criterion checks the
caller's cancel flag, so a client that hangs up stops its generation within a token.
``infer`` (tensors in, tensors out) is refused: language models are served by the
OpenAI-compatible routes (inference.serving.openai).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from inference.device import MB, intra_op_threads
from inference.errors import InvalidInput, LoadFailed
from inference.runtimes.base import LoadedModel
from modelmgr.memory_need import llm_context, llm_dtype, llm_estimate

# torch's global RNG is what a seed sets: seeded generations take turns.
_SEED_LOCK = threading.Lock()
# transformers' lazy module is not safe to import from two load threads at once (one of
# them sees a half-initialized module: "cannot import name AutoModelForCausalLM").
_IMPORT_LOCK = threading.Lock()


def _transformers():
    with _IMPORT_LOCK:
        import transformers
        from transformers import (  # noqa: F401 - resolved now, under the lock
            AutoModelForCausalLM,
            AutoTokenizer,
            StoppingCriteria,
            StoppingCriteriaList,
        )
        from transformers.generation.streamers import BaseStreamer  # noqa: F401

        return transformers


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


class CausalLMRuntime:
    name = "transformers"

    def load_version(self, model_dir: Path, spec, device: str) -> CausalLM:
        """As ``load``, with the version's metadata (its ``dtype`` wins over the config's)."""
        return self.load(model_dir, spec.primary, {}, device, metadata=spec.metadata)

    def load(
        self,
        model_dir: Path,
        primary: str,
        signature: dict,
        device: str,
        *,
        metadata: dict | None = None,
    ) -> CausalLM:
        config_path = model_dir / "config.json"
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise LoadFailed(f"the folder has no readable config.json: {exc}") from None
        architectures = config.get("architectures") or []
        if not any(str(a).endswith("ForCausalLM") for a in architectures):
            raise LoadFailed(
                "this Hugging Face folder is not a causal language model (config.json "
                f"architectures: {', '.join(map(str, architectures)) or 'none'}); only "
                "*ForCausalLM folders run in the worker"
            )
        if not (model_dir / "tokenizer.json").exists():
            raise LoadFailed("the folder has no tokenizer.json")
        return CausalLM(model_dir, config, device, metadata or {})


class CausalLM(LoadedModel):
    signature: dict = {"inputs": [], "outputs": []}
    tensor_refusal = (
        "this slot serves a language model: use POST /v1/chat/completions or /v1/completions "
        "(or Ollama's /api/chat, /api/generate) on the serving port"
    )

    def __init__(self, folder: Path, config: dict, device: str, metadata: dict):
        import torch

        transformers = _transformers()
        AutoModelForCausalLM, AutoTokenizer = (
            transformers.AutoModelForCausalLM,
            transformers.AutoTokenizer,
        )
        if not device.startswith("cuda"):
            torch.set_num_threads(intra_op_threads())  # as the other torch runtime does
        self.config = config
        self.dtype = llm_dtype(config, metadata)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=getattr(torch, self.dtype), use_safetensors=True
        ).to(device)
        self.model.eval()
        self.device = device
        self.provider = device
        self.context_length = llm_context(config, settings.MODELMGR_LLM_CONTEXT)
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.eos_token_id = self.tokenizer.eos_token_id
        self.memory_bytes = llm_estimate(
            config,
            metadata=metadata,
            parallel=settings.MODELMGR_LLM_NUM_PARALLEL,
            context=settings.MODELMGR_LLM_CONTEXT,
        )
        self.memory_mb = self.memory_bytes / MB

    # --- tensors in, tensors out: not for language models ----------------------------
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise InvalidInput(self.tensor_refusal)

    def warm_up(self) -> None:
        """Generate one token from the start token."""
        start = self.tokenizer.bos_token_id
        ids = [start if start is not None else 0]
        self.generate(GenerationRequest(ids, max_tokens=1, temperature=0.0), lambda _t: None)

    def unload(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # --- text ------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def chat_ids(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        # The template writes the special tokens it wants; add none twice.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def text_stream(self) -> Callable[[int], str | None]:
        """A decoder for one generation: each token id in turn -> its new text (None
        while it ends in a partial character), special tokens skipped; one call into
        the tokenizer per token instead of decoding a window of them twice."""
        from tokenizers.decoders import DecodeStream

        stream = DecodeStream(skip_special_tokens=True)
        backend = self.tokenizer.backend_tokenizer
        return lambda token: stream.step(backend, token)

    def generate(self, request: GenerationRequest, on_token: Callable[[int], None]) -> int:
        """Generate (blocking, in the caller's thread), calling ``on_token`` with each new
        token id; returns how many were generated. Stops at EOS, ``max_tokens`` or when
        ``request.cancel`` is set."""
        import torch

        transformers = _transformers()
        StoppingCriteria = transformers.StoppingCriteria
        StoppingCriteriaList = transformers.StoppingCriteriaList
        BaseStreamer = transformers.generation.streamers.BaseStreamer

        model = self.model
        if model is None:
            raise LoadFailed("the model was unloaded")
        count = 0

        class Stream(BaseStreamer):
            prompt_seen = False

            def put(self, value):
                nonlocal count
                if not self.prompt_seen:  # generate() hands over the prompt first
                    self.prompt_seen = True
                    return
                for token in value.reshape(-1).tolist():
                    count += 1
                    on_token(int(token))

            def end(self):
                pass

        ids = torch.tensor([request.prompt_ids], dtype=torch.long, device=self.device)
        # One generation, one row: the answers made once, not a new tensor per token.
        go_on = torch.zeros((1,), dtype=torch.bool, device=self.device)
        stop = torch.ones((1,), dtype=torch.bool, device=self.device)

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop if request.cancel.is_set() else go_on

        sample = request.temperature > 0
        options = {
            "max_new_tokens": request.max_tokens,
            "do_sample": sample,
            "streamer": Stream(),
            "stopping_criteria": StoppingCriteriaList([Cancelled()]),
            "pad_token_id": self.eos_token_id,
            "attention_mask": torch.ones_like(ids),
        }
        if sample:
            options.update(temperature=request.temperature, top_p=request.top_p)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            if request.seed is not None:
                with _SEED_LOCK:
                    torch.manual_seed(request.seed)
                    model.generate(ids, **options)
            else:
                model.generate(ids, **options)
        return count
