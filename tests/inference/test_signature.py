"""Signatures: what the worker serves and warms up with, and how inputs are checked."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import InvalidInput
from inference.signature import (
    arrays_from_json,
    check_inputs,
    contract_mismatches,
    effective_signature,
)

TWO = {
    "inputs": [
        {"name": "a", "shape": ["batch", 2], "dtype": "float32"},
        {"name": "b", "shape": ["batch"], "dtype": "int64"},
    ]
}


def test_missing_shapes_come_from_metadata_then_from_the_contract():
    signature = {
        "inputs": [
            {"name": "obs", "shape": None, "dtype": None},
            {"name": "mask", "shape": None, "dtype": None},
        ]
    }
    metadata = {"inputs": [{"name": "obs", "shape": ["b", 12], "dtype": "float32"}]}
    contract = {
        "inputs": [
            {"name": "mask", "shape": [12], "dtype": "bool"},
            {"name": "obs", "shape": [1, 99], "dtype": "float64"},
        ]
    }
    inputs = effective_signature(signature, metadata=metadata, contract=contract)["inputs"]
    assert inputs == [
        {"name": "obs", "shape": ["b", 12], "dtype": "float32"},
        {"name": "mask", "shape": [12], "dtype": "bool"},
    ]


def test_a_signature_without_inputs_takes_the_metadata_inputs():
    metadata = {"inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}]}
    assert effective_signature({}, metadata=metadata)["inputs"] == metadata["inputs"]


def test_symbolic_dims_must_agree_across_inputs():
    arrays = {"a": np.zeros((3, 2), np.float32), "b": np.zeros((4,), np.int64)}
    with pytest.raises(
        InvalidInput,
        match=r"input 'b' expects shape \[batch\] with batch=3 as "
        r"in the other inputs \(int64\), got \[4\] \(int64\)",
    ):
        check_inputs(TWO, arrays, strict_dtype=True)
    check_inputs(
        TWO, {"a": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.int64)}, strict_dtype=True
    )


def test_json_numbers_take_the_signature_dtype_without_lossy_casts():
    arrays = arrays_from_json(TWO, {"a": [[1, 2]], "b": [7]})
    assert arrays["a"].dtype == np.float32 and arrays["b"].dtype == np.int64
    with pytest.raises(InvalidInput, match="input 'b' expects int64 values, got floats"):
        arrays_from_json(TWO, {"a": [[1, 2]], "b": [7.5]})
    with pytest.raises(InvalidInput, match="input 'a' is not a rectangular array of numbers"):
        arrays_from_json(TWO, {"a": [["one", "two"]], "b": [1]})


def test_json_for_an_input_without_a_recorded_dtype_is_float32():
    arrays = arrays_from_json(
        {"inputs": [{"name": "input", "shape": None, "dtype": None}]}, {"input": [[1, 2, 3]]}
    )
    assert arrays["input"].dtype == np.float32


def test_contract_checks_names_dtypes_and_fixed_dims_only():
    signature = {
        "inputs": [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
    }
    assert contract_mismatches(signature, {"inputs": [{"name": "x", "shape": [8, 4]}]}) == []
    assert contract_mismatches(
        signature,
        {
            "inputs": [{"name": "x", "shape": [None, 3], "dtype": "float16"}],
            "outputs": [{"name": "scores"}],
        },
    ) == [
        "input 'x' is float32, the contract wants float16",
        "input 'x' has shape [batch, 4], the contract wants [?, 3]",
        "output 'scores' is missing",
    ]
