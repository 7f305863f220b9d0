"""Hand-made hostile or unusual artifacts for ingest tests (no torch needed to read them)."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path


class RunsCode:
    """Unpickling this calls os.system: proof that a pickle was (not) executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_pickle(marker: Path, *, protocol: int = 4) -> bytes:
    return pickle.dumps({"weight": RunsCode(marker)}, protocol=protocol)


def torch_zip(
    data_pkl: bytes,
    *,
    top: str = "archive",
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """A torch.save-style zip around a given data.pkl."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{top}/data.pkl", data_pkl)
        archive.writestr(f"{top}/version", b"3\n")
        archive.writestr(f"{top}/byteorder", b"little")
        for name, data in (extra or {}).items():
            archive.writestr(f"{top}/{name}", data)
    return buffer.getvalue()


def build_legacy_state_dict(path: Path) -> Path:
    """A state dict in torch's pre-zip format (a sequence of pickles)."""
    import torch

    torch.save(
        {"w": torch.zeros(3, 2), "b": torch.ones(3, dtype=torch.float16)},
        str(path),
        _use_new_zipfile_serialization=False,
    )
    return path


def build_onnx_with_initializer_inputs(path: Path) -> Path:
    """IR 3 style: the weight is both an initializer and listed among graph inputs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
