"""Runtimes: ONNX Runtime and torch load, warm up, infer and unload real tiny models."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from inference.errors import LoadFailed, RuntimeUnavailable
from inference.runtimes.base import runtime_for
from inference.signature import dummy_inputs, effective_signature
from tests.inference.support import ONNX_SIGNATURE, PT2_SIGNATURE, TORCHSCRIPT_SIGNATURE
from tests.modelfiles import build_onnx_external_data

X = np.arange(12, dtype=np.float32).reshape(3, 4)


def test_onnx_model_loads_infers_and_unloads(model_files, tmp_path):
    model_files.onnx(tmp_path / "m" / "model.onnx")
    model = runtime_for("onnx").load(tmp_path / "m", "model.onnx", ONNX_SIGNATURE, "cpu")
    outputs = model.infer({"x": X})
    assert outputs["y"].shape == (3, 2) and outputs["y"].dtype == np.float32
    assert model.memory_bytes == (tmp_path / "m" / "model.onnx").stat().st_size
    model.unload()
    assert model.session is None


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_onnx_provider_is_the_one_the_session_really_uses(model_files, tmp_path, device):
    import onnxruntime as ort

    model_files.onnx(tmp_path / "m" / "model.onnx")
    model = runtime_for("onnx").load(tmp_path / "m", "model.onnx", ONNX_SIGNATURE, device)
    assert model.provider == model.session.get_providers()[0]
    if device == "cpu" or not _ort_cuda_works(ort):
        # onnxruntime-gpu lists CUDA among the available providers even without a GPU.
        assert model.provider == "CPUExecutionProvider"


def _ort_cuda_works(ort) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()


def test_warm_up_input_is_built_from_the_signature():
    inputs, note = dummy_inputs(
        {
            "inputs": [
                {"name": "images", "shape": ["batch", 3, None, 8], "dtype": "float16"},
                {"name": "mask", "shape": [2], "dtype": "bool"},
            ]
        }
    )
    assert note == ""
    assert inputs["images"].shape == (1, 3, 1, 8) and inputs["images"].dtype == np.float16
    assert inputs["mask"].shape == (2,) and inputs["mask"].dtype == np.bool_


def test_onnx_warm_up_runs_on_the_signature_zeros(model_files, tmp_path):
    model_files.onnx(tmp_path / "m" / "model.onnx")
    model = runtime_for("onnx").load(tmp_path / "m", "model.onnx", ONNX_SIGNATURE, "cpu")
    model.warm_up()
    assert model.warmup_note == ""


def test_declared_signature_that_disagrees_with_the_onnx_graph_fails_the_load(
    model_files, tmp_path
):
    model_files.onnx(tmp_path / "m" / "model.onnx")
    wrong = {"inputs": [{"name": "x", "shape": ["batch", 16], "dtype": "float32"}]}
    with pytest.raises(
        LoadFailed,
        match=r"input 'x' is declared \[batch, 16\], the graph "
        r"takes \[batch, 4\]",
    ):
        runtime_for("onnx").load(tmp_path / "m", "model.onnx", wrong, "cpu")


def test_onnx_with_external_data_loads_from_its_folder(tmp_path):
    folder = tmp_path / "ext"
    folder.mkdir()
    build_onnx_external_data(folder)
    model = runtime_for("onnx").load(folder, "model.onnx", ONNX_SIGNATURE, "cpu")
    assert model.infer({"x": X})["y"].shape == (3, 2)


def test_torchscript_loads_and_warms_up_from_version_metadata(model_files, tmp_path):
    model_files.torchscript(tmp_path / "m" / "model.pt")
    signature = effective_signature(
        TORCHSCRIPT_SIGNATURE,
        metadata={"inputs": [{"name": "input", "shape": ["batch", 4], "dtype": "float32"}]},
    )
    model = runtime_for("torchscript").load(tmp_path / "m", "model.pt", signature, "cpu")
    model.warm_up()
    assert model.warmup_note == ""
    assert model.provider == "cpu"
    assert model.memory_bytes == (4 * 8 + 8 + 8 * 2 + 2) * 4  # the MLP's float32 parameters
    assert model.infer({"input": X})["output"].shape == (3, 2)
    model.unload()
    assert model.module is None


def test_torchscript_warm_up_falls_back_to_the_slot_contract(model_files, tmp_path):
    model_files.torchscript(tmp_path / "m" / "model.pt")
    contract = {"inputs": [{"name": "input", "shape": [None, 4], "dtype": "float32"}]}
    signature = effective_signature(TORCHSCRIPT_SIGNATURE, metadata={}, contract=contract)
    model = runtime_for("torchscript").load(tmp_path / "m", "model.pt", signature, "cpu")
    model.warm_up()
    assert model.warmup_note == ""


def test_torchscript_without_any_shape_skips_warm_up_with_a_note(model_files, tmp_path):
    model_files.torchscript(tmp_path / "m" / "model.pt")
    model = runtime_for("torchscript").load(
        tmp_path / "m", "model.pt", TORCHSCRIPT_SIGNATURE, "cpu"
    )
    model.warm_up()
    assert "warm-up skipped: input 'input' has no recorded shape" in model.warmup_note
    assert model.infer({"input": X})["output"].shape == (3, 2)


def test_pt2_program_loads_infers_and_unloads(model_files, tmp_path):
    model_files.pt2(tmp_path / "m" / "model.pt2")
    model = runtime_for("torch_export").load(tmp_path / "m", "model.pt2", PT2_SIGNATURE, "cpu")
    model.warm_up()
    outputs = model.infer({"input": X})
    assert list(outputs) == ["linear_1"] and outputs["linear_1"].shape == (3, 2)
    model.unload()
    assert model.module is None


@pytest.mark.parametrize("framework", ["safetensors", "pytorch_state_dict"])
def test_weights_without_an_architecture_are_refused_clearly(framework):
    with pytest.raises(
        RuntimeUnavailable,
        match=f"framework {framework} has no runnable graph; upload ONNX, TorchScript or .pt2",
    ):
        runtime_for(framework)


def test_framework_without_a_runtime_names_the_ones_there_are():
    with pytest.raises(
        RuntimeUnavailable,
        match=r"framework keras has no runtime in this "
        r"worker \(it runs: huggingface, onnx, ",
    ):
        runtime_for("keras")


def test_registered_runtime_that_cannot_be_imported_is_reported(settings):
    settings.MODELMGR_WORKER_RUNTIMES = ["broken=inference.runtimes.nope.Missing"]
    with pytest.raises(
        RuntimeUnavailable,
        match=r"the runtime for broken "
        r"\(inference.runtimes.nope.Missing\)",
    ):
        runtime_for("broken")


def test_worker_modules_import_neither_torch_nor_onnxruntime(tmp_path):
    """Runtimes load on first use: the worker (and anything the web process might
    import from it) starts without torch or onnxruntime."""
    script = (
        "import django, sys; django.setup();"
        "import inference.server, inference.serve, inference.worker, inference.runtimes.base, "
        "inference.management.commands.runinference;"
        "from inference.device import detect_device; detect_device('cpu');"
        "heavy = [m for m in ('torch', 'onnxruntime') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={
            "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
            "MODELMGR_VAR_DIR": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            # where a machine keeps extra packages (the GPU host's carried wheels)
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        },
        cwd=str(_root()),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_auto_device_is_cuda_exactly_when_torch_sees_a_gpu():
    from inference.device import detect_device

    assert detect_device("auto").device == ("cuda:0" if _cuda() else "cpu")
    assert detect_device("cpu").device == "cpu"


def test_a_gpu_that_is_not_there_is_an_error_not_a_quiet_cpu_fallback():
    import torch

    from inference.device import DeviceUnavailable, detect_device

    missing = f"cuda:{torch.cuda.device_count() if _cuda() else 0}"
    with pytest.raises(DeviceUnavailable, match=f"MODELMGR_WORKER_DEVICE={missing}"):
        detect_device(missing)
    with pytest.raises(DeviceUnavailable, match="expected 'auto', 'cpu' or 'cuda:N'"):
        detect_device("gpu0")
    with pytest.raises(DeviceUnavailable, match="is a number"):
        detect_device("cuda:first")


def test_runinference_refuses_to_start_on_a_missing_gpu(settings):
    import torch
    from django.core.management import CommandError, call_command

    settings.MODELMGR_WORKER_DEVICE = f"cuda:{torch.cuda.device_count() if _cuda() else 0}"
    with pytest.raises(CommandError, match="MODELMGR_WORKER_DEVICE=cuda:"):
        call_command("runinference", "--port", "0")


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["torchscript", "torch_export"])
def test_torch_model_runs_on_the_gpu_and_unload_gives_the_memory_back(model_files, tmp_path, kind):
    import torch

    from inference.device import DeviceInfo, memory_reading

    build, name = {
        "torchscript": (model_files.torchscript, "model.pt"),
        "torch_export": (model_files.pt2, "model.pt2"),
    }[kind]
    build(tmp_path / "m" / name)
    signature = (
        PT2_SIGNATURE
        if kind == "torch_export"
        else effective_signature(
            TORCHSCRIPT_SIGNATURE, metadata={"inputs": PT2_SIGNATURE["inputs"]}
        )
    )
    levels = []
    for _ in range(2):  # the second round shows what a load leaves behind: nothing
        before = torch.cuda.memory_allocated("cuda:0")
        model = runtime_for(kind).load(tmp_path / "m", name, signature, "cuda:0")
        model.warm_up()
        assert model.provider == "cuda:0" and model.memory_bytes >= (4 * 8 + 8 + 8 * 2 + 2) * 4
        assert torch.cuda.memory_allocated("cuda:0") > before
        outputs = model.infer({"input": X})
        assert next(iter(outputs.values())).shape == (3, 2)  # back on the host as numpy
        model.unload()
        # (cuBLAS/cuBLASLt workspaces stay allocated once per thread: hence two rounds)
        levels.append(torch.cuda.memory_allocated("cuda:0"))
    assert levels[1] == levels[0]
    reading = memory_reading(DeviceInfo("cuda:0", "gpu"), models_bytes=0)
    assert reading.kind == "gpu" and 0 < reading.used_bytes < reading.budget_bytes
