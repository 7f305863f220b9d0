"""Tiny real models built on the fly (torch -> ONNX, TorchScript, .pt2, safetensors).

Builders write into a directory and return the path. ``ModelFiles`` (the ``model_files``
session fixture) builds each kind once per test session and hands out copies.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path


def _mlp(in_features: int = 4, out_features: int = 2, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(in_features, 8), torch.nn.ReLU(), torch.nn.Linear(8, out_features)
    ).eval()


def build_onnx(
    path: Path,
    *,
    in_features: int = 4,
    out_features: int = 2,
    seed: int = 0,
    input_name: str = "x",
    output_name: str = "y",
) -> Path:
    """An MLP exported with the dynamo exporter: input [batch, in_features] float32."""
    import torch

    model = _mlp(in_features, out_features, seed)
    example = torch.randn(2, in_features)  # batch >= 2, else it is specialised to 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            verbose=False,
        )
    return path


def build_onnx_external_data(folder: Path, *, location: str = "weights.bin") -> Path:
    """An ONNX model whose initializers live in a separate file (``location``)."""
    import onnx

    src = build_onnx(folder / "tmp_inline.onnx")
    model = onnx.load(str(src))
    src.unlink()
    target = folder / "model.onnx"
    onnx.save_model(
        model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
    )
    return target


def build_torchscript(
    path: Path, *, in_features: int = 4, out_features: int = 2, seed: int = 0
) -> Path:
    import torch

    model = _mlp(in_features, out_features, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.randn(2, in_features))
        traced.save(str(path))
    return path


def build_pt2(path: Path, *, in_features: int = 4, out_features: int = 2, seed: int = 0) -> Path:
    import torch

    model = _mlp(in_features, out_features, seed)
    program = torch.export.export(
        model, (torch.randn(2, in_features),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(path))
    return path


def build_safetensors(path: Path, *, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    save_file(_mlp(seed=seed).state_dict(), str(path), metadata={"format": "pt"})
    return path


def build_state_dict(path: Path, *, seed: int = 0) -> Path:
    import torch

    torch.save(_mlp(seed=seed).state_dict(), str(path))
    return path


def build_pickled_module(path: Path, *, seed: int = 0) -> Path:
    """A full pickled nn.Module (unsafe: loading it would run arbitrary code)."""
    import torch

    torch.save(_mlp(seed=seed), str(path))
    return path


def build_huggingface_folder(folder: Path) -> Path:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["TinyMLP"], "model_type": "tiny-mlp", "hidden_size": 8})
    )
    build_safetensors(folder / "model.safetensors")
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {}}))
    return folder


class ModelFiles:
    """Builds each kind once (per test session) and copies it out on request."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir

    def _cached(self, name: str, builder, **kwargs) -> Path:
        key = name + "".join(f"-{k}{v}" for k, v in sorted(kwargs.items()))
        target = self.cache_dir / key / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            builder(target, **kwargs)
        return target

    def copy(self, name: str, builder, dest: Path, **kwargs) -> Path:
        src = self._cached(name, builder, **kwargs)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest

    def onnx(self, dest: Path, **kwargs) -> Path:
        return self.copy("model.onnx", build_onnx, dest, **kwargs)

    def torchscript(self, dest: Path, **kwargs) -> Path:
        return self.copy("model.torchscript.pt", build_torchscript, dest, **kwargs)

    def pt2(self, dest: Path, **kwargs) -> Path:
        return self.copy("model.pt2", build_pt2, dest, **kwargs)

    def safetensors(self, dest: Path, **kwargs) -> Path:
        return self.copy("model.safetensors", build_safetensors, dest, **kwargs)

    def state_dict(self, dest: Path, **kwargs) -> Path:
        return self.copy("state_dict.pt", build_state_dict, dest, **kwargs)

    def pickled_module(self, dest: Path, **kwargs) -> Path:
        return self.copy("full_module.pt", build_pickled_module, dest, **kwargs)
