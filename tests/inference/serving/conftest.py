"""A real worker subprocess with its serving port, a served ONNX model and robot tokens."""

from __future__ import annotations

import pytest

from modelmgr.registry.tokens import token_create
from tests.inference.support import GATE_RUNTIMES, llm_version, make_slot, onnx_version
from tests.workerproc import start_worker

QUIET = {
    "MODELMGR_WORKER_RUNTIMES": ",".join(GATE_RUNTIMES),
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
    "MODELMGR_TOKEN_CACHE_S": "0.5",
}
LLM_ENV = {**QUIET, "MODELMGR_WORKER_DEVICE": "cpu"}


def token(user, *, scopes=("read",), slots=(), name="robot") -> str:
    return token_create(user=user, name=name, scopes=scopes, slots=slots)[1]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def served_clf(owner, model_files, tmp_path):
    """clf@1 (ONNX, x [batch, 4] float32 -> y [batch, 2]) served by the slot det."""
    version = onnx_version(owner, model_files, tmp_path)
    make_slot("det", version)
    return version


@pytest.fixture
def worker_proc(served_clf):
    with start_worker(env=QUIET) as worker_proc:
        worker_proc.wait_ready()
        yield worker_proc


@pytest.fixture
def llms(owner, llama_files, tmp_path):
    """Slot chat: tiny-llama@1 (chat template); slot plain: plain@1 (no template)."""
    chat = llm_version(owner, llama_files, tmp_path)
    plain = llm_version(owner, llama_files, tmp_path, name="plain", chat_template=False)
    make_slot("chat", chat)
    make_slot("plain", plain)
    return chat, plain


@pytest.fixture
def llm_worker(llms):
    with start_worker(env=LLM_ENV) as worker:
        worker.wait_ready()
        yield worker
