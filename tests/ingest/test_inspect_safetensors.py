from __future__ import annotations

import json
import struct

import pytest

from modelmgr.exceptions import IngestRejected
from modelmgr.ingest.services import version_create
from modelmgr.models import Framework
from tests.ingest.support import assert_nothing_stored, incoming, incoming_file

pytestmark = pytest.mark.django_db


def safetensors(header: dict, data: bytes, *, raw_header: bytes | None = None) -> bytes:
    encoded = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def two_tensors(**overrides) -> dict:
    header = {
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]},
    }
    header.update(overrides)
    return header


def refused(tiny_model, owner, data: bytes) -> str:
    with pytest.raises(IngestRejected) as caught:
        version_create(model=tiny_model, actor=owner, files=[incoming("model.safetensors", data)])
    assert caught.value.status == 422
    assert_nothing_stored()
    return caught.value.detail


def test_safetensors_tensors_are_read_from_the_header(model_files, tmp_path, tiny_model, owner):
    source = model_files.safetensors(tmp_path / "m.safetensors")
    version = version_create(
        model=tiny_model, actor=owner, files=[incoming_file("model.safetensors", source)]
    )
    assert version.framework == Framework.SAFETENSORS
    inspection = version.inspection
    assert {"name": "0.weight", "shape": [8, 4], "dtype": "float32"} in inspection["tensors"]
    assert inspection["tensor_count"] == 4
    assert inspection["parameter_count"] == 58
    assert inspection["metadata"] == {"format": "pt"}
    assert version.signature == {}


def test_handmade_safetensors_with_metadata_and_two_dtypes_is_accepted(tiny_model, owner):
    header = {**two_tensors(), "__metadata__": {"source": "test"}}
    version = version_create(
        model=tiny_model,
        actor=owner,
        files=[incoming("m.safetensors", safetensors(header, b"\0" * 24))],
    )
    assert version.inspection["dtypes"] == ["float32", "int64"]
    assert version.inspection["parameter_count"] == 5


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.3, 0.6, 0.95])
def test_truncated_safetensors_is_refused(model_files, tmp_path, tiny_model, owner, fraction):
    data = model_files.safetensors(tmp_path / "m.safetensors").read_bytes()
    cut = max(1, int(len(data) * fraction))
    assert "not a valid safetensors file" in refused(tiny_model, owner, data[:cut])


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (struct.pack("<Q", 10**12) + b"{}", "runs past the end"),
        (safetensors({}, b"", raw_header=b"{not json"), "not valid JSON"),
        (safetensors({}, b"", raw_header=b"[1, 2]"), "not a JSON object"),
        (safetensors({}, b"", raw_header=b'{"a": 1, "a": 2}'), "duplicate key"),
        (
            safetensors(
                two_tensors(a={"dtype": "F33", "shape": [2, 2], "data_offsets": [0, 16]}),
                b"\0" * 24,
            ),
            "unknown dtype",
        ),
        (
            safetensors(
                two_tensors(a={"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}),
                b"\0" * 24,
            ),
            "invalid shape",
        ),
        (
            safetensors(
                two_tensors(a={"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}),
                b"\0" * 24,
            ),
            "needs 24",
        ),
        (
            safetensors(
                two_tensors(a={"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]}),
                b"\0" * 24,
            ),
            "invalid data_offsets",
        ),
        (
            safetensors(
                two_tensors(b={"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}), b"\0" * 16
            ),
            "overlaps",
        ),
        (
            safetensors(
                two_tensors(b={"dtype": "I64", "shape": [1], "data_offsets": [24, 32]}), b"\0" * 32
            ),
            "leaves a gap",
        ),
        (safetensors(two_tensors(), b"\0" * 40), "truncated or padded"),
        (safetensors(two_tensors(), b"\0" * 20), "truncated or padded"),
        (
            safetensors({**two_tensors(), "__metadata__": {"n": 1}}, b"\0" * 24),
            "__metadata__ must map strings to strings",
        ),
    ],
)
def test_corrupt_safetensors_header_is_refused(tiny_model, owner, data, problem):
    assert problem in refused(tiny_model, owner, data)


def test_empty_safetensors_file_is_refused(tiny_model, owner):
    assert "empty" in refused(tiny_model, owner, b"")
