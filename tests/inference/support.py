"""Registry rows for worker tests: versions of tiny real models with their bytes stored."""

from __future__ import annotations

import json
import time
from pathlib import Path

from modelmgr.models import ModelVersion, RegisteredModel, Slot
from modelmgr.storage import content_store
from tests.inference import gate_runtime
from tests.registry.factories import make_version

ONNX_SIGNATURE = {
    "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
    "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
}
PT2_SIGNATURE = {
    "inputs": [{"name": "input", "shape": ["s31", 4], "dtype": "float32"}],
    "outputs": [{"name": "linear_1", "shape": ["s31", 2], "dtype": "float32"}],
}
# What ingest reads from a TorchScript archive: names only.
TORCHSCRIPT_SIGNATURE = {
    "inputs": [{"name": "input", "shape": None, "dtype": None}],
    "outputs": [{"name": "output", "shape": None, "dtype": None}],
}
# What a reconcile pass reports of the pins when nothing is pinned (inference.pins).
NO_PINS = {"pinned": [], "unpinned": [], "errors": {}}
GATE_RUNTIMES = [f"{gate_runtime.FRAMEWORK}={gate_runtime.DOTTED}"]


def registered(owner, name: str, task: str = "classifier") -> RegisteredModel:
    return RegisteredModel.objects.get_or_create(owner=owner, name=name, defaults={"task": task})[0]


def onnx_version(
    owner,
    model_files,
    tmp_path: Path,
    *,
    name: str = "clf",
    version: str = "1",
    seed: int = 0,
    signature: dict | None = None,
    **fields,
) -> ModelVersion:
    data = model_files.onnx(tmp_path / "built" / f"{name}-{seed}.onnx", seed=seed).read_bytes()
    return make_version(
        registered(owner, name),
        version,
        files={"model.onnx": data},
        framework="onnx",
        signature=signature or ONNX_SIGNATURE,
        **fields,
    )


def torch_version(
    owner,
    model_files,
    tmp_path: Path,
    *,
    kind: str,
    name: str = "tnet",
    version: str = "1",
    **fields,
) -> ModelVersion:
    build = {
        "torchscript": model_files.torchscript,
        "torch_export": model_files.pt2,
        "pytorch_pickle": model_files.pickled_module,
    }[kind]
    filename = {
        "torchscript": "model.pt",
        "torch_export": "model.pt2",
        "pytorch_pickle": "model.pt",
    }[kind]
    data = build(tmp_path / "built" / f"{name}-{kind}").read_bytes()
    signature = {
        "torchscript": TORCHSCRIPT_SIGNATURE,
        "torch_export": PT2_SIGNATURE,
        "pytorch_pickle": {},
    }[kind]
    fields.setdefault("signature", signature)
    return make_version(
        registered(owner, name), version, files={filename: data}, framework=kind, **fields
    )


def gate_version(
    owner, *, name: str = "gate", version: str = "1", gate: Path | None = None, **config
) -> ModelVersion:
    """A test_gate version; each distinct config is distinct bytes (and content hash)."""
    body = json.dumps(
        {"name": f"{name}@{version}", "gate": str(gate) if gate else None, **config}
    ).encode()
    return make_version(
        registered(owner, name),
        version,
        files={"gate.json": body},
        framework=gate_runtime.FRAMEWORK,
        signature=gate_runtime.SIGNATURE,
    )


def make_slot(name: str, version: ModelVersion | None = None, **fields) -> Slot:
    return Slot.objects.create(name=name, active_version=version, **fields)


def corrupt(version: ModelVersion) -> None:
    """Overwrite the stored bytes of the version's primary file in place."""
    blob = content_store().local_path(version.primary_file.sha256)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))


def waiting_loads(gate: Path) -> int:
    return len(list(gate.parent.glob(gate.name + ".*.waiting")))


def eventually(check, *, limit: float = 60.0, what: str = "condition"):
    """Poll ``check`` until it returns a truthy value (a generous limit, not a timing)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"{what} never happened")


def llm_version(
    owner,
    llama_files,
    tmp_path: Path,
    *,
    name: str = "tiny-llama",
    version: str = "1",
    chat_template: bool = True,
    seed: int = 0,
    **fields,
) -> ModelVersion:
    """A tiny real Llama folder (tests.llmfiles) stored as a huggingface version."""
    from tests.llmfiles import folder_files

    folder = llama_files.folder(
        tmp_path / "built" / f"{name}-{version}", chat_template=chat_template, seed=seed
    )
    return make_version(
        registered(owner, name, task="llm"),
        version,
        files=folder_files(folder),
        framework="huggingface",
        **fields,
    )
