"""Resource caps (`optimus.limits`) for nodes built in Python: one parameter may not exceed
``max_params`` values, a node not more than ``max_ports`` input ports, a shape not more than
`MAX_RANK` axes of `MAX_DIM`; each refusal names the node and the limit and allocates
nothing."""
from __future__ import annotations

import pytest

import optimus
from optimus import limits


def test_a_parameter_over_the_cap_is_refused_naming_node_and_limit():
    with pytest.raises(optimus.ResourceLimitError,
                       match=r"'big.weights' of shape \(100000, 100000\) asks for "
                             r"10,000,000,000 values, over the limit of 268,435,456"):
        optimus.Affine("big", (None, 100_000), (None, 100_000))


def test_the_environment_variable_and_budget_set_the_cap(monkeypatch):
    monkeypatch.setenv("OPTIMUS_MAX_PARAMS", "50")
    with pytest.raises(optimus.ResourceLimitError, match="limit of 50"):
        optimus.Affine("a", (None, 10), (None, 10))
    optimus.Affine("a", (None, 4), (None, 10))  # 40 values: under the cap
    with limits.budget(max_params=200):  # a budget counts every parameter together
        optimus.Affine("a", (None, 10), (None, 10))
        with pytest.raises(optimus.ResourceLimitError, match="with 110 already in this definition"):
            optimus.Affine("b", (None, 10), (None, 10))
    monkeypatch.setenv("OPTIMUS_MAX_PARAMS", "many")
    with pytest.raises(optimus.ResourceLimitError, match="OPTIMUS_MAX_PARAMS='many'"):
        optimus.Affine("a", (None, 2), (None, 2))


def test_ports_are_capped_before_any_is_created(monkeypatch):
    with pytest.raises(optimus.ResourceLimitError, match="1,000,000,000,000 input ports"):
        optimus.Add("sum", num_inputs=10**12)
    monkeypatch.setenv("OPTIMUS_MAX_PORTS", "3")
    optimus.Add("sum", num_inputs=3)
    with pytest.raises(optimus.ResourceLimitError, match="over the limit of 3"):
        optimus.Concatenate("cat", num_inputs=4)


@pytest.mark.parametrize("shape, message", [
    ((None,) + (2,) * 40, "41 axes, over the limit of 32"),
    ((None, 2**31), "2,147,483,648 is over the limit"),
])
def test_shapes_are_capped(shape, message):
    with pytest.raises(optimus.ResourceLimitError, match=message):
        optimus.Input("x", shape)


@pytest.mark.parametrize("value", [0, -3, True, 2.5])
def test_budget_arguments_must_be_positive_ints(value):
    with pytest.raises(optimus.ResourceLimitError, match="max_params must be a positive int"):
        with limits.budget(max_params=value):
            pass
