"""Language-model serving: tokens/s and time to first token through the OpenAI route
versus in-process ``generate`` of the same model, then streams across LLM swaps.

Targets (issue #11): streaming overhead <= 10 % of in-process tokens/s for one stream;
0 failed streams across 20 LLM swaps under 8 streams.
The model is the tests' tiny random Llama (tests/llmfiles.py) unless --folder names a
Hugging Face causal-LM folder; a tiny model makes the per-token overhead most visible,
``--hidden 512 --layers 8`` builds one whose token costs what a small real model's does
on a CPU. The in-process and route runs alternate (``--rounds`` each) and the overhead is
the median of the per-round ratios, so a change in the machine's load between them does
not decide the figure.
Usage: .venv/bin/python benchmarks/llm.py [--tokens 128] [--swaps 20] [--streams 8]
       [--hidden 32] [--layers 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import emit, percentile, print_table, serving_deployment  # noqa: E402

PROMPT = "the quick brown fox"


class InProcess:
    """``model.generate`` with a streamer in this process, greedy, on the worker's device."""

    def __init__(self, folder: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # The worker's torch threads (MODELMGR_WORKER_INTRA_OP_THREADS, else 1-2): a fair race.
        torch.set_num_threads(2 if (os.cpu_count() or 1) >= 4 else 1)
        self.torch = torch
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModelForCausalLM.from_pretrained(str(folder)).eval().to(device)
        self.ids = torch.tensor([self.tok(PROMPT)["input_ids"]], device=device)

    def run(self, tokens: int) -> tuple[float, float]:
        """(tokens/s, time to first token in ms) of one generation."""
        from transformers.generation.streamers import BaseStreamer

        marks: list[float] = []

        class Clock(BaseStreamer):
            def put(self, value):
                marks.append(time.perf_counter())

            def end(self):
                pass

        started = time.perf_counter()
        with self.torch.inference_mode():
            out = self.model.generate(
                self.ids,
                max_new_tokens=tokens,  # greedy: the same tokens the route generates
                do_sample=False,
                streamer=Clock(),
                pad_token_id=self.tok.eos_token_id,
                attention_mask=self.torch.ones_like(self.ids),
            )
        elapsed = time.perf_counter() - started
        made = out.shape[1] - self.ids.shape[1]
        return made / elapsed, (marks[1] - started) * 1000  # marks[0] is the prompt


def one_stream(client, tokens: int) -> tuple[int, float, float]:
    """(tokens, seconds, time to first token in ms) of one streamed completion."""
    started = time.perf_counter()
    first = None
    usage = 0
    for chunk in client.completions.create(
        model="bench", prompt=PROMPT, max_tokens=tokens, temperature=0, stream=True
    ):
        # The first chunk: a random model's first tokens may be partial characters,
        # held back until whole, so "first text" would measure the model, not the route.
        if first is None:
            first = time.perf_counter()
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
    elapsed = time.perf_counter() - started
    return usage, elapsed, ((first or time.perf_counter()) - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--hidden", type=int, default=32, help="built model's hidden size")
    parser.add_argument("--layers", type=int, default=2, help="built model's layers")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each")
    args = parser.parse_args()
    import openai

    from tests.llmfiles import build_tiny_llama

    with serving_deployment() as dep:
        dep.env["MODELMGR_LLM_NUM_PARALLEL"] = str(args.streams)
        folders = []
        for seed in (1, 2):
            folder = args.folder or build_tiny_llama(
                dep.tmp / f"llama-{seed}", seed=seed, hidden_size=args.hidden, layers=args.layers
            )
            folders.append(folder)
            dep.register(folder, name="bench-llm", version=str(seed), task="llm")
        dep.start_all()
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=120) as web:
            web.post("/api/v1/slots", json={"name": "bench", "task": "llm"}).raise_for_status()
            web.post("/api/v1/switch", json={"bench": "bench-llm@1"}).raise_for_status()
        dep.wait_ready()
        client = openai.OpenAI(base_url=f"{dep.serve_url}/v1", api_key=dep.token, max_retries=0)
        local = InProcess(folders[0])
        local.run(8)  # warm both
        one_stream(client, 8)
        locals_, routes = [], []
        for _ in range(args.rounds):
            locals_.append(local.run(args.tokens))
            made, seconds, first = one_stream(client, args.tokens)
            routes.append((made / seconds, first))
        ratios = [route[0] / mine[0] for mine, route in zip(locals_, routes, strict=True)]
        local_rate = percentile([r[0] for r in locals_], 50)
        local_ttft = percentile([r[1] for r in locals_], 50)
        route_rate = percentile([r[0] for r in routes], 50)
        ttft = percentile([r[1] for r in routes], 50)
        del local
        # Many streams at once.
        results: list[tuple[int, float, float]] = []
        started = time.perf_counter()
        threads = [
            threading.Thread(target=lambda: results.append(one_stream(client, args.tokens)))
            for _ in range(args.streams)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        many_rate = sum(r[0] for r in results) / (time.perf_counter() - started)
        # Swaps under streams.
        stop = threading.Event()
        failures: list[str] = []
        finished = [0]

        def loop() -> None:
            while not stop.is_set():
                try:
                    one_stream(client, 32)
                    finished[0] += 1
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    failures.append(repr(exc))

        workers = [threading.Thread(target=loop) for _ in range(args.streams)]
        for t in workers:
            t.start()
        switch_errors = []
        with httpx.Client(base_url=dep.web_url, headers=dep.auth(), timeout=120) as web:
            for i in range(args.swaps):
                target = f"bench-llm@{2 if i % 2 == 0 else 1}"
                r = web.post("/api/v1/switch", json={"bench": target})
                if r.status_code != 200:
                    switch_errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(0.2)
        stop.set()
        for t in workers:
            t.join(120)
    overhead = 100 * (1 - percentile(ratios, 50))
    figures = {
        "model": "folder" if args.folder else f"llama hidden {args.hidden}, {args.layers} layers",
        "rounds": args.rounds,
        "in_process_tokens_per_s": round(local_rate, 1),
        "in_process_ttft_ms": round(local_ttft, 1),
        "route_tokens_per_s": round(route_rate, 1),
        "route_ttft_ms": round(ttft, 1),
        "streaming_overhead_pct": round(overhead, 1),
        "overhead_pct_per_round": [round(100 * (1 - r), 1) for r in ratios],
        f"{args.streams}_streams_tokens_per_s": round(many_rate, 1),
        f"{args.streams}_streams_ttft_ms_p50": round(percentile([r[2] for r in results], 50), 1),
        "swaps": args.swaps,
        "switch_failures": len(switch_errors),
        "streams_during_swaps": finished[0],
        "failed_streams": len(failures),
    }
    print_table("language model serving", [(k, str(v)) for k, v in figures.items()])
    if failures or switch_errors:
        print("failures:", (failures + switch_errors)[:5])
    emit(figures)


if __name__ == "__main__":
    main()
