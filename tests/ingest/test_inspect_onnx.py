from __future__ import annotations

import onnx
import pytest

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.services import version_create
from modelmgr.models import Framework
from tests.ingest.craft import build_onnx_with_initializer_inputs
from tests.ingest.support import assert_nothing_stored, incoming, incoming_file, staged_files

pytestmark = pytest.mark.django_db


def create(model, actor, *files, **kwargs):
    return version_create(model=model, actor=actor, files=list(files), **kwargs)


def external_version(
    folder, *, location: str | None = None, weights_path="weights.bin", offset: str | None = None
):
    """model.onnx + its weights file, optionally with a rewritten location/offset."""
    weights = (folder / "weights.bin").read_bytes()
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and location is not None:
                entry.value = location
            if entry.key == "offset" and offset is not None:
                entry.value = offset
    return [incoming("model.onnx", model.SerializeToString()), incoming(weights_path, weights)]


def test_onnx_signature_has_the_symbolic_batch_dim(model_files, tmp_path, tiny_model, owner):
    version = create(
        tiny_model, owner, incoming_file("model.onnx", model_files.onnx(tmp_path / "m.onnx"))
    )
    assert version.framework == Framework.ONNX
    assert version.signature == {
        "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
    }
    inspection = version.inspection
    assert inspection["parameter_count"] == 4 * 8 + 8 + 8 * 2 + 2
    assert inspection["opset"] == {"ai.onnx": 20}
    assert inspection["producer"].startswith("pytorch")
    assert inspection["ir_version"] >= 8
    assert inspection["checker"] == "passed"


def test_custom_input_names_are_read(model_files, tmp_path, tiny_model, owner):
    source = model_files.onnx(
        tmp_path / "m.onnx", input_name="image", output_name="logits", in_features=3
    )
    version = create(tiny_model, owner, incoming_file("m.onnx", source))
    assert version.signature["inputs"][0] == {
        "name": "image",
        "shape": ["batch", 3],
        "dtype": "float32",
    }
    assert version.signature["outputs"][0]["name"] == "logits"


def test_graph_inputs_that_are_initializers_are_not_inputs(tmp_path, tiny_model, owner):
    source = build_onnx_with_initializer_inputs(tmp_path / "m.onnx")
    version = create(tiny_model, owner, incoming_file("m.onnx", source))
    assert [i["name"] for i in version.signature["inputs"]] == ["X"]
    assert version.signature["inputs"][0]["shape"] == ["N", 4]
    assert version.inspection["parameter_count"] == 12


def test_external_data_inside_the_version_is_accepted(onnx_external_folder, tiny_model, owner):
    version = create(tiny_model, owner, *external_version(onnx_external_folder))
    assert version.inspection["external_data"] == ["weights.bin"]
    assert version.inspection["parameter_count"] == 58
    assert version.inspection["checker"] == "passed"
    assert version.primary_file.path == "model.onnx"
    assert version.files.count() == 2


def test_external_data_in_a_subfolder_resolves_next_to_the_model(
    onnx_external_folder, tiny_model, owner
):
    files = external_version(onnx_external_folder)
    files[0].path = "onnx/model.onnx"
    files[1].path = "onnx/weights.bin"
    version = create(tiny_model, owner, *files)
    assert version.inspection["external_data"] == ["onnx/weights.bin"]


@pytest.mark.parametrize(
    "location",
    [
        "../weights.bin",
        "/etc/passwd",
        "sub/../../weights.bin",
        "%2e%2e/weights.bin",
        "..\\weights.bin",
        "C:/weights.bin",
        "weights\x00.bin",
    ],
)
def test_external_data_escaping_the_version_folder_is_refused(
    onnx_external_folder, tiny_model, owner, location
):
    with pytest.raises(IngestRejected) as caught:
        create(tiny_model, owner, *external_version(onnx_external_folder, location=location))
    assert "escapes the version folder" in caught.value.detail
    assert caught.value.status == 422
    assert_nothing_stored()


def test_external_data_naming_a_missing_file_is_refused(onnx_external_folder, tiny_model, owner):
    files = external_version(onnx_external_folder, weights_path="other.bin")
    with pytest.raises(IngestRejected, match="not a file of this version"):
        create(tiny_model, owner, *files)
    assert_nothing_stored()


def test_external_data_reading_past_its_file_is_refused(onnx_external_folder, tiny_model, owner):
    with pytest.raises(IngestRejected, match="reads past the end"):
        create(tiny_model, owner, *external_version(onnx_external_folder, offset="100000"))
    assert_nothing_stored()


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_truncated_onnx_is_refused(model_files, tmp_path, tiny_model, owner, fraction):
    data = model_files.onnx(tmp_path / "m.onnx").read_bytes()
    with pytest.raises(IngestRejected) as caught:
        create(tiny_model, owner, incoming("model.onnx", data[: int(len(data) * fraction)]))
    assert "not a valid ONNX model" in caught.value.detail
    assert_nothing_stored()


def test_every_truncation_point_of_a_tiny_onnx_is_refused(model_files, tmp_path):
    from modelmgr.ingest.inspect_onnx import inspect_onnx

    data = model_files.onnx(tmp_path / "m.onnx").read_bytes()
    target = tmp_path / "cut.onnx"
    for cut in range(1, len(data), 7):
        target.write_bytes(data[:cut])
        with pytest.raises(IngestRejected):
            inspect_onnx(target, path="cut.onnx", version_sizes={"cut.onnx": cut})


def test_corrupt_onnx_is_refused(tiny_model, owner):
    with pytest.raises(IngestRejected, match="not a valid ONNX model"):
        create(tiny_model, owner, incoming("model.onnx", b"\x08\x07\x12\xff\xff garbage" * 50))
    assert_nothing_stored()


def test_onnx_that_fails_the_checker_is_refused(tiny_model, owner):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["missing"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(IngestRejected, match="not a valid ONNX model"):
        create(tiny_model, owner, incoming("model.onnx", model.SerializeToString()))
    assert_nothing_stored()
    assert staged_files() == []
