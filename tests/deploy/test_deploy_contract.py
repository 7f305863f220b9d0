"""version_fits_slot: task and signature contract; clean_contract: well-formed contracts."""

from __future__ import annotations

import pytest

from modelmgr.deploy.contract import InvalidContract, clean_contract, version_fits_slot
from modelmgr.models import Slot
from tests.deploy.support import version_of

pytestmark = pytest.mark.django_db


def contract(**overrides):
    base = {
        "inputs": [{"name": "x", "shape": [None, 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": ["n", 2], "dtype": "float32"}],
    }
    return {**base, **overrides}


def test_matching_task_and_signature_fits(owner):
    slot = Slot.objects.create(name="clf", task="classifier", contract=contract())
    assert version_fits_slot(version_of(owner), slot) == []


def test_task_mismatch_is_named(owner):
    slot = Slot.objects.create(name="detector", task="detector")
    problems = version_fits_slot(version_of(owner), slot)
    assert problems == ["clf@1 is a classifier model, slot detector serves detector"]


def test_slot_of_task_other_accepts_any_task(owner):
    slot = Slot.objects.create(name="anything", task="other")
    assert version_fits_slot(version_of(owner, task="llm"), slot) == []


def test_missing_input_name_is_refused(owner):
    slot = Slot.objects.create(
        name="s", contract=contract(inputs=[{"name": "image", "shape": None, "dtype": None}])
    )
    assert version_fits_slot(version_of(owner), slot) == ["input 'image' is missing"]


def test_dtype_mismatch_is_refused(owner):
    slot = Slot.objects.create(
        name="s", contract=contract(inputs=[{"name": "x", "shape": None, "dtype": "float16"}])
    )
    assert version_fits_slot(version_of(owner), slot) == [
        "input 'x' is float32, the contract wants float16"
    ]


def test_fixed_dim_mismatch_is_refused(owner):
    slot = Slot.objects.create(
        name="s",
        contract=contract(outputs=[{"name": "y", "shape": [None, 10], "dtype": "float32"}]),
    )
    assert version_fits_slot(version_of(owner), slot) == [
        "output 'y' has shape [batch, 2], the contract wants [?, 10]"
    ]


def test_rank_mismatch_is_refused(owner):
    slot = Slot.objects.create(
        name="s", contract=contract(inputs=[{"name": "x", "shape": [1, 3, 4], "dtype": "float32"}])
    )
    assert "input 'x' has shape [batch, 4], the contract wants [1, 3, 4]" in version_fits_slot(
        version_of(owner), slot
    )


def test_symbolic_dims_match_any_size(owner):
    slot = Slot.objects.create(
        name="s",
        contract=contract(inputs=[{"name": "x", "shape": [8, "features"], "dtype": "float32"}]),
    )
    assert version_fits_slot(version_of(owner), slot) == []


def test_unrecorded_shape_and_dtype_match_anything(owner):
    version = version_of(
        owner,
        signature={
            "inputs": [{"name": "x", "shape": None, "dtype": None}],
            "outputs": [{"name": "y", "shape": None, "dtype": None}],
        },
    )
    slot = Slot.objects.create(name="s", contract=contract())
    assert version_fits_slot(version, slot) == []


def test_metadata_inputs_fill_a_signature_without_inputs(owner):
    version = version_of(
        owner,
        signature={"outputs": SIG_OUT},
        metadata={"inputs": [{"name": "x", "shape": [1, 3], "dtype": "float32"}]},
    )
    slot = Slot.objects.create(name="s", contract=contract())
    assert version_fits_slot(version, slot) == [
        "input 'x' has shape [1, 3], the contract wants [?, 4]"
    ]


SIG_OUT = [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}]


def test_several_problems_are_all_named(owner):
    slot = Slot.objects.create(
        name="det",
        task="detector",
        contract=contract(inputs=[{"name": "image", "shape": None, "dtype": None}]),
    )
    assert len(version_fits_slot(version_of(owner), slot)) == 2


def test_empty_contract_is_no_contract():
    assert clean_contract({}) == {}
    assert clean_contract(None) == {}


def test_contract_is_normalised():
    cleaned = clean_contract({"inputs": [{"name": "x", "shape": [None, "n", 3]}]})
    assert cleaned == {"inputs": [{"name": "x", "shape": [None, "n", 3], "dtype": None}]}


@pytest.mark.parametrize(
    ("contract_in", "named"),
    [
        ([1, 2], "must be an object"),
        ({"inputz": []}, "unknown keys ['inputz']"),
        ({"inputs": {"x": 1}}, "contract.inputs must be a list"),
        ({"inputs": [{"shape": [1]}]}, "contract.inputs[0] needs a non-empty 'name'"),
        ({"inputs": [{"name": "x", "shape": [-1]}]}, "non-negative integer"),
        ({"inputs": [{"name": "x", "shape": 4}]}, "shape must be a list"),
        ({"inputs": [{"name": "x", "dtype": "flaot32"}]}, "'flaot32' is not a dtype"),
        ({"outputs": [{"name": "y"}, {"name": "y"}]}, "'y' appears twice"),
        ({"outputs": [{"name": "y", "rank": 2}]}, "unknown keys ['rank']"),
    ],
)
def test_malformed_contract_is_refused_naming_the_part(contract_in, named):
    with pytest.raises(InvalidContract) as caught:
        clean_contract(contract_in)
    assert named in caught.value.detail
    assert caught.value.status == 422
