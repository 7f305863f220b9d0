"""The v2 tensor codec's one-step functions: request tensors in, response tensors out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.serving.v2_codec import (
    InferRequest,
    V2BadRequest,
    encode_infer_response,
    parse_infer_request,
)


def binary_request(tensors: dict[str, tuple[str, np.ndarray]], **payload) -> tuple[bytes, int]:
    inputs = [
        {
            "name": name,
            "datatype": datatype,
            "shape": list(array.shape),
            "parameters": {"binary_data_size": array.nbytes},
        }
        for name, (datatype, array) in tensors.items()
    ]
    head = json.dumps({"inputs": inputs, **payload}).encode()
    return head + b"".join(a.tobytes() for _, a in tensors.values()), len(head)


class Entry:  # what encode_infer_response reads of a pool entry
    ref = "clf@2.1"


def test_binary_tensors_of_every_kind_come_back_as_sent():
    tensors = {
        "mask": ("BOOL", np.array([[True, False, True]])),
        "ids": ("INT64", np.arange(6, dtype=np.int64).reshape(2, 3)),
        "half": ("FP16", np.array([0.5, -2.0], dtype=np.float16)),
        "pixels": ("UINT8", np.full((1, 2, 2), 255, dtype=np.uint8)),
    }
    body, head = binary_request(tensors, id="req-1")
    request = parse_infer_request(body, head)
    assert request.id == "req-1"
    for name, (_, array) in tensors.items():
        assert request.inputs[name].dtype == array.dtype
        np.testing.assert_array_equal(request.inputs[name], array)


def test_json_data_may_be_flat_or_nested_and_takes_the_datatype():
    body = json.dumps(
        {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]},
                {"name": "b", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
                {"name": "c", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            ]
        }
    ).encode()
    inputs = parse_infer_request(body, None).inputs
    assert inputs["a"].dtype == np.float32 and inputs["a"].shape == (2, 2)
    assert inputs["b"].dtype == np.int32 and inputs["b"].tolist() == [[1, 2], [3, 4]]
    assert inputs["c"].tolist() == [True, False]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [{"name": "a", "datatype": "INT32", "shape": [2], "data": [1.5, 2]}],
            "INT32 data must be integers, got floats",
        ),
        (
            [{"name": "a", "datatype": "FP32", "shape": [2, -1], "data": [1, 2]}],
            "shape must be a list of non-negative integers",
        ),
        ([{"name": "a", "datatype": "FP32", "shape": [2]}], "neither data nor"),
        (
            [{"name": "a", "datatype": "FP32", "shape": [1], "data": ["x"]}],
            "data must be an array of numbers",
        ),
        (
            [
                {"name": "a", "datatype": "FP32", "shape": [1], "data": [1]},
                {"name": "a", "datatype": "FP32", "shape": [1], "data": [1]},
            ],
            "input 'a' is given twice",
        ),
        (  # 1e400 in a JSON body parses as infinity
            [{"name": "a", "datatype": "FP32", "shape": [2], "data": [float("inf"), 1]}],
            "input 'a' has values that are not finite FP32 numbers",
        ),
        (  # beyond float32's range: infinity once cast
            [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1e39]}],
            "input 'a' has values that are not finite FP32 numbers",
        ),
    ],
)
def test_bad_json_tensors_are_400_naming_the_input(inputs, message):
    with pytest.raises(V2BadRequest, match=message):
        parse_infer_request(json.dumps({"inputs": inputs}).encode(), None)


def test_binary_sizes_that_do_not_add_up_are_400():
    body, head = binary_request({"x": ("FP32", np.zeros((2, 2), np.float32))})
    with pytest.raises(V2BadRequest, match="body ends before its 16 binary bytes"):
        parse_infer_request(body[:-1], head)
    with pytest.raises(V2BadRequest, match="4 bytes of binary data no input claims"):
        parse_infer_request(body + b"\0" * 4, head)
    with pytest.raises(V2BadRequest, match="Inference-Header-Content-Length is 9999"):
        parse_infer_request(body, 9999)
    wrong = body.replace(b'"binary_data_size": 16', b'"binary_data_size": 12')
    with pytest.raises(V2BadRequest, match="binary_data_size is 12, but FP32 \\[2, 2\\] takes 16"):
        parse_infer_request(wrong[:-4], head)


def test_response_puts_binary_outputs_after_the_header_in_order():
    outputs = {
        "y": np.array([[1.0, np.nan]], dtype=np.float32),
        "n": np.array([7], dtype=np.int64),
    }
    request = InferRequest(
        id=None, inputs={}, outputs=[("n", True), ("y", False)], binary_default=False
    )
    body, head = encode_infer_response(slot="det", entry=Entry(), request=request, outputs=outputs)
    header = json.loads(body[:head])
    assert header["model_name"] == "det" and header["model_version"] == "2.1"
    assert [o["name"] for o in header["outputs"]] == ["n", "y"]
    assert header["outputs"][0] == {
        "name": "n",
        "datatype": "INT64",
        "shape": [1],
        "parameters": {"binary_data_size": 8},
    }
    assert header["outputs"][1]["data"] == [1.0, "NaN"]  # JSON has no NaN
    assert np.frombuffer(body[head:], dtype=np.int64).tolist() == [7]
    plain = InferRequest(id="7", inputs={}, outputs=None, binary_default=False)
    body, head = encode_infer_response(slot="det", entry=Entry(), request=plain, outputs=outputs)
    assert head is None and json.loads(body)["id"] == "7"
