from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import pytest

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.detect import detect_version, sniff_file
from modelmgr.ingest.picklescan import disallowed_globals
from modelmgr.models import Framework
from tests.ingest.craft import build_legacy_state_dict, malicious_pickle, torch_zip
from tests.ingest.support import incoming, incoming_file
from tests.modelfiles import build_huggingface_folder


def detect(*files, **kwargs):
    return detect_version(list(files), **kwargs)


@pytest.mark.parametrize(
    ("builder", "name", "framework"),
    [
        ("onnx", "model.onnx", Framework.ONNX),
        ("torchscript", "model.pt", Framework.TORCHSCRIPT),
        ("pt2", "model.pt2", Framework.TORCH_EXPORT),
        ("safetensors", "model.safetensors", Framework.SAFETENSORS),
        ("state_dict", "weights.pth", Framework.PYTORCH_STATE_DICT),
        ("pickled_module", "model.pt", Framework.PYTORCH_PICKLE),
    ],
)
def test_real_tiny_models_are_detected(model_files, tmp_path, builder, name, framework):
    source = getattr(model_files, builder)(tmp_path / name)
    detection = detect(incoming_file(name, source))
    assert detection.framework == framework
    assert detection.primary_path == name
    assert detection.unsafe is (framework == Framework.PYTORCH_PICKLE)


@pytest.mark.parametrize("name", ["weights", "model.bin", "model.onnx", "model.pkl"])
def test_content_decides_over_a_misleading_extension(model_files, tmp_path, name):
    source = model_files.torchscript(tmp_path / "ts.pt")
    assert detect(incoming_file(name, source)).framework == Framework.TORCHSCRIPT


def test_safetensors_is_recognised_without_its_extension(model_files, tmp_path):
    source = model_files.safetensors(tmp_path / "m.safetensors")
    assert detect(incoming_file("weights.dat", source)).framework == Framework.SAFETENSORS


def test_legacy_torch_state_dict_is_a_state_dict(tmp_path):
    source = build_legacy_state_dict(tmp_path / "legacy.pt")
    assert detect(incoming_file("legacy.pt", source)).framework == Framework.PYTORCH_STATE_DICT


def test_pickle_with_a_non_allowlisted_global_is_unsafe(tmp_path):
    data = torch_zip(malicious_pickle(tmp_path / "pwned"))
    detection = detect(incoming("model.pt", data))
    assert detection.framework == Framework.PYTORCH_PICKLE
    assert detection.unsafe
    assert "posix.system" in detection.kinds["model.pt"].unsafe_globals
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickle_scanner_sees_globals_in_every_protocol(tmp_path, protocol):
    bad = disallowed_globals(io.BytesIO(malicious_pickle(tmp_path / "x", protocol=protocol)))
    assert bad == ["posix.system"]


def test_pickle_scanner_accepts_a_plain_ordered_dict():
    data = pickle.dumps(OrderedDict(a=1, b=[1.0, 2.0]), protocol=2)
    assert disallowed_globals(io.BytesIO(data)) == []


def test_stack_global_built_from_memo_strings_is_still_seen():
    # protocol 4: module/name strings are memoized, then fetched with BINGET.
    payload = (
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\x8c\x05posix\x94\x8c\x06system\x94\x93\x94"  # posix.system once
        b"h\x00h\x01\x93."
    )  # ... and again, from the memo
    assert disallowed_globals(io.BytesIO(payload)) == ["posix.system"]


def test_stack_global_from_a_non_string_is_treated_as_unsafe():
    payload = b"\x80\x04K\x01K\x02\x93."  # STACK_GLOBAL over two ints
    assert disallowed_globals(io.BytesIO(payload)) == ["?.?"]


def test_hdf5_file_is_keras():
    data = b"\x89HDF\r\n\x1a\n" + b"\0" * 100
    assert detect(incoming("model.h5", data)).framework == Framework.KERAS


def test_h5_without_hdf5_magic_is_refused():
    with pytest.raises(IngestRejected, match="not an HDF5 file"):
        detect(incoming("model.h5", b"garbage" * 10))


def test_tensorflow_saved_model_is_detected():
    detection = detect(
        incoming("saved_model.pb", b"\x08\x01" * 10), incoming("variables/variables.index", b"idx")
    )
    assert detection.framework == Framework.TENSORFLOW
    assert detection.primary_path == "saved_model.pb"


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib"])
def test_sklearn_pickles_are_unsafe_and_never_unpickled(tmp_path, name):
    detection = detect(incoming(name, malicious_pickle(tmp_path / "pwned")))
    assert detection.framework == Framework.SKLEARN
    assert detection.unsafe
    assert not (tmp_path / "pwned").exists()


def test_pt_file_that_is_neither_zip_nor_pickle_is_refused():
    with pytest.raises(IngestRejected, match="neither a torch zip archive nor a pickle"):
        detect(incoming("model.pt", b"not a model at all"))


def test_huggingface_folder_is_detected(tmp_path):
    folder = build_huggingface_folder(tmp_path / "hf")
    files = [incoming_file(p.name, p) for p in sorted(folder.iterdir())]
    detection = detect(*files)
    assert detection.framework == Framework.HUGGINGFACE
    assert detection.primary_path == "model.safetensors"
    assert not detection.unsafe


def test_huggingface_folder_with_pickled_weights_is_unsafe(tmp_path, model_files):
    files = [
        incoming("config.json", b'{"model_type": "x"}'),
        incoming_file("pytorch_model.bin", model_files.pickled_module(tmp_path / "m.pt")),
    ]
    detection = detect(*files)
    assert detection.framework == Framework.HUGGINGFACE
    assert detection.unsafe


def test_primary_is_the_highest_priority_model_file(model_files, tmp_path):
    files = [
        incoming_file(
            "weights/model.safetensors", model_files.safetensors(tmp_path / "a.safetensors")
        ),
        incoming_file("model.onnx", model_files.onnx(tmp_path / "b.onnx")),
        incoming("README.md", b"# tiny"),
    ]
    detection = detect(*files)
    assert (detection.framework, detection.primary_path) == (Framework.ONNX, "model.onnx")


def test_explicit_primary_path_wins(model_files, tmp_path):
    files = [
        incoming_file("model.safetensors", model_files.safetensors(tmp_path / "a")),
        incoming_file("model.onnx", model_files.onnx(tmp_path / "b.onnx")),
    ]
    detection = detect(*files, primary_path="./model.safetensors")
    assert (detection.framework, detection.primary_path) == (
        Framework.SAFETENSORS,
        "model.safetensors",
    )


def test_explicit_primary_path_must_be_a_file_of_the_version():
    with pytest.raises(IngestRejected, match="'other.onnx' is not one of the version's files"):
        detect(incoming("a.txt", b"x"), primary_path="other.onnx")


def test_unrecognised_files_are_framework_other():
    detection = detect(incoming("notes.txt", b"hello"), incoming("big.dat", b"x" * 100))
    assert (detection.framework, detection.primary_path) == (Framework.OTHER, "big.dat")


def test_unknown_framework_string_is_refused_naming_the_allowed_values():
    with pytest.raises(IngestRejected) as caught:
        detect(incoming("a.txt", b"x"), framework="tensorrt")
    assert caught.value.status == 422
    assert "'tensorrt'" in caught.value.detail and "onnx" in caught.value.detail
    assert "huggingface" in caught.value.detail


def test_framework_contradicting_the_content_is_refused_naming_both(model_files, tmp_path):
    source = model_files.onnx(tmp_path / "m.onnx")
    with pytest.raises(IngestRejected) as caught:
        detect(incoming_file("m.onnx", source), framework="torchscript")
    assert caught.value.status == 422
    assert "'torchscript'" in caught.value.detail and "'onnx'" in caught.value.detail


def test_claiming_a_pickled_module_is_a_state_dict_is_refused(model_files, tmp_path):
    source = model_files.pickled_module(tmp_path / "m.pt")
    with pytest.raises(IngestRejected, match="contradicts"):
        detect(incoming_file("m.pt", source), framework="pytorch_state_dict")


def test_a_state_dict_may_be_declared_the_stricter_pytorch_pickle(model_files, tmp_path):
    source = model_files.state_dict(tmp_path / "sd.pt")
    detection = detect(incoming_file("sd.pt", source), framework="pytorch_pickle")
    assert detection.framework == Framework.PYTORCH_PICKLE
    assert detection.unsafe


def test_matching_framework_string_is_accepted(model_files, tmp_path):
    source = model_files.pt2(tmp_path / "m.pt2")
    assert (
        detect(incoming_file("m.pt2", source), framework="torch_export").framework
        == Framework.TORCH_EXPORT
    )


def test_sniffing_a_zip_that_is_not_a_model_says_nothing(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(torch_zip(b"", top="a").replace(b"data.pkl", b"other.pk"))
    assert sniff_file("x.zip", path).framework is None


def test_ingest_modules_never_import_torch_or_onnxruntime():
    code = (
        "import django, sys; django.setup();"
        "import modelmgr.ingest.services, modelmgr.ingest.inspection;"
        "import modelmgr.management.commands.import_model;"
        "bad = [m for m in ('torch', 'onnxruntime') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={
            "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
            "PATH": "/usr/bin:/bin",
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        },
        cwd=str(_repo_root()),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_pickle_with_a_huge_inline_value_is_not_scanned_and_unsafe(monkeypatch):
    from modelmgr.ingest import picklescan

    monkeypatch.setattr(picklescan, "MAX_INLINE_BYTES", 100)
    data = pickle.dumps({"weight": b"x" * 1000}, protocol=4)
    detection = detect(incoming("model.pt", data))
    assert detection.framework == Framework.PYTORCH_PICKLE and detection.unsafe
    assert "not scanned" in detection.kinds["model.pt"].unsafe_globals[0]
