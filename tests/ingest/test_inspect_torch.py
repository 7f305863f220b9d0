from __future__ import annotations

import zipfile

import pytest

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.services import version_create
from modelmgr.models import Framework
from tests.ingest.craft import build_legacy_state_dict, malicious_pickle, torch_zip
from tests.ingest.support import assert_nothing_stored, incoming, incoming_file

pytestmark = pytest.mark.django_db


def create(model, actor, *files, **kwargs):
    return version_create(model=model, actor=actor, files=list(files), **kwargs)


def test_torchscript_forward_input_names_are_read(model_files, tmp_path, tiny_model, owner):
    source = model_files.torchscript(tmp_path / "m.pt")
    version = create(tiny_model, owner, incoming_file("model.pt", source))
    assert version.framework == Framework.TORCHSCRIPT
    assert version.signature == {
        "inputs": [{"name": "input", "shape": None, "dtype": None}],
        "outputs": [{"name": "output", "shape": None, "dtype": None}],
    }
    assert version.inspection["forward"] == "forward(input: Tensor) -> Tensor"
    assert version.inspection["parameter_count"] == 58
    assert version.inspection["module_class"].endswith("container.Sequential")
    assert not version.unsafe


def test_torchscript_missing_its_code_is_refused(model_files, tmp_path, tiny_model, owner):
    source = model_files.torchscript(tmp_path / "m.pt")
    stripped = tmp_path / "stripped.pt"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(stripped, "w") as copy:
        for info in original.infolist():
            if not info.filename.endswith("container.py"):
                copy.writestr(info, original.read(info))
    with pytest.raises(IngestRejected, match="not a valid TorchScript archive"):
        create(tiny_model, owner, incoming_file("model.pt", stripped))
    assert_nothing_stored()


def test_pt2_inputs_have_symbolic_dims_and_dtypes(model_files, tmp_path, tiny_model, owner):
    source = model_files.pt2(tmp_path / "m.pt2")
    version = create(tiny_model, owner, incoming_file("model.pt2", source))
    assert version.framework == Framework.TORCH_EXPORT
    [model_input] = version.signature["inputs"]
    assert model_input["name"] == "input"
    assert model_input["dtype"] == "float32"
    batch, features = model_input["shape"]
    assert isinstance(batch, str) and features == 4
    [output] = version.signature["outputs"]
    assert output["shape"] == [batch, 2] and output["dtype"] == "float32"
    assert version.inspection["parameter_count"] == 58
    assert batch in version.inspection["dynamic_dims"]


def test_pt2_with_a_broken_program_is_refused(model_files, tmp_path, tiny_model, owner):
    source = model_files.pt2(tmp_path / "m.pt2")
    broken = tmp_path / "broken.pt2"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(broken, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            copy.writestr(
                info, b'{"graph_module": 1' if info.filename.endswith("models/model.json") else data
            )
    with pytest.raises(IngestRejected, match="not a valid .pt2 archive"):
        create(tiny_model, owner, incoming_file("model.pt2", broken))
    assert_nothing_stored()


def test_truncated_pt2_is_refused(model_files, tmp_path, tiny_model, owner):
    data = model_files.pt2(tmp_path / "m.pt2").read_bytes()
    with pytest.raises(IngestRejected, match="not a valid .pt2 archive"):
        create(tiny_model, owner, incoming("model.pt2", data[: len(data) // 2]))
    assert_nothing_stored()


def test_state_dict_tensor_shapes_are_read(model_files, tmp_path, tiny_model, owner):
    source = model_files.state_dict(tmp_path / "sd.pt")
    version = create(tiny_model, owner, incoming_file("weights.pt", source))
    assert version.framework == Framework.PYTORCH_STATE_DICT
    assert not version.unsafe
    tensors = {t["name"]: t for t in version.inspection["tensors"]}
    assert tensors["0.weight"] == {"name": "0.weight", "shape": [8, 4], "dtype": "float32"}
    assert tensors["2.bias"]["shape"] == [2]
    assert version.inspection["parameter_count"] == 58


def test_legacy_state_dict_shapes_are_read(tmp_path, tiny_model, owner):
    source = build_legacy_state_dict(tmp_path / "legacy.pt")
    version = create(tiny_model, owner, incoming_file("legacy.pt", source))
    tensors = {t["name"]: t for t in version.inspection["tensors"]}
    assert tensors["w"]["shape"] == [3, 2] and tensors["b"]["dtype"] == "float16"


def test_state_dict_with_a_truncated_storage_is_refused(model_files, tmp_path, tiny_model, owner):
    source = model_files.state_dict(tmp_path / "sd.pt")
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(broken, "w") as copy:
        for info in original.infolist():
            data = original.read(info)
            copy.writestr(info, data[:4] if info.filename.endswith("data/0") else data)
    with pytest.raises(IngestRejected, match="missing or truncated"):
        create(tiny_model, owner, incoming_file("weights.pt", broken))
    assert_nothing_stored()


def test_pickled_module_is_stored_as_unsafe_and_never_unpickled(
    model_files, tmp_path, tiny_model, owner
):
    source = model_files.pickled_module(tmp_path / "full.pt")
    version = create(tiny_model, owner, incoming_file("model.pt", source))
    assert version.framework == Framework.PYTORCH_PICKLE
    assert version.unsafe and not version.is_deployable()
    assert "torch.nn.modules.container.Sequential" in version.inspection["pickle_globals"]
    assert version.signature == {}


def test_malicious_pickle_is_stored_unsafe_without_running(tmp_path, tiny_model, owner):
    marker = tmp_path / "pwned"
    data = torch_zip(malicious_pickle(marker))
    version = create(tiny_model, owner, incoming("model.pt", data))
    assert version.unsafe
    assert "posix.system" in version.inspection["pickle_globals"]
    assert not marker.exists()


def test_malicious_pickle_declared_a_state_dict_is_refused(tmp_path, tiny_model, owner):
    marker = tmp_path / "pwned"
    data = torch_zip(malicious_pickle(marker))
    with pytest.raises(IngestRejected, match="contradicts"):
        create(tiny_model, owner, incoming("model.pt", data), framework="pytorch_state_dict")
    assert not marker.exists()
    assert_nothing_stored()


def test_unrecognised_file_declared_a_state_dict_must_prove_it(tmp_path, tiny_model, owner):
    marker = tmp_path / "pwned"
    with pytest.raises(IngestRejected, match="not a plain state dict: its pickle imports"):
        create(
            tiny_model,
            owner,
            incoming("weights.dat", malicious_pickle(marker)),
            framework="pytorch_state_dict",
        )
    assert not marker.exists()
    assert_nothing_stored()
