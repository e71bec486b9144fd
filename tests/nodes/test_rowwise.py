"""`Node.rowwise`: the declared row-wise property, checked against every node case.

A node declared row-wise must give, on the rows of a batch split in two, the two halves of its
output on the whole batch (in a call without update); a node declared not row-wise must not
(except the few that are conservative on purpose, listed below). A node type that is row-wise
in none of its cases must be listed in `NEVER_ROWWISE`, so a new type is never forgotten.
"""
from __future__ import annotations

import pytest
import torch

import optimus
from optimus.nodes.base import keeps_rows

from .cases import CASES, Case
from .test_coverage import library_types
from .test_numeric import build

# Types that are not row-wise in any configuration (reductions to a scalar, losses, ...).
NEVER_ROWWISE = {
    "Constant", "SliceGT", "NegativeLogLikelihoodLoss", "NegativeLogLikelihood",
    "CategoricalCrossEntropy", "SoftmaxCrossEntropyLoss", "CrossEntropyLoss",
    "MeanSquaredError", "WeightDecayPenalty", "SimilarityMargin", "ContrastiveMargin",
    "PairwiseRank",
}
# Declared not row-wise although splitting this case happens to give the same values.
CONSERVATIVE = {"SliceGT"}


def shapes_of(case: Case) -> dict:
    return {port: a.shape for port, a in case.inputs.items()}


def run(node, case: Case, inputs: dict) -> torch.Tensor:
    params = {k: torch.tensor(v) for k, v in case.param_values(node).items()}
    with torch.no_grad():
        return node.outputs_of(inputs, params, training=False)["output"]


def split_agrees(node, case: Case) -> bool:
    """Whether computing the first row and the other rows apart gives the whole output."""
    full = {p: torch.tensor(a) for p, a in case.inputs.items()}
    batched = [p for p, a in case.inputs.items() if a.ndim >= 1]
    if not batched:
        return False
    head = {p: t[:1] if p in batched else t for p, t in full.items()}
    tail = {p: t[1:] if p in batched else t for p, t in full.items()}
    try:
        whole, parts = run(node, case, full), [run(node, case, head), run(node, case, tail)]
        if whole.dim() == 0 or any(p.dim() == 0 for p in parts):
            return False
        joined = torch.cat(parts)
    except (RuntimeError, ValueError, IndexError):
        return False
    return joined.shape == whole.shape and bool(torch.allclose(joined, whole, atol=1e-12))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_declared_rowwise_matches_the_forward(case):
    node = build(case)
    declared = node.rowwise_for(shapes_of(case))
    assert isinstance(declared, bool)
    if declared:
        assert split_agrees(node, case), f"{case.id} is declared row-wise but is not"
    elif case.type not in CONSERVATIVE:
        assert not split_agrees(node, case), f"{case.id} is row-wise but not declared so"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rowwise_property_never_claims_more_than_the_shapes_show(case):
    node = build(case)
    assert isinstance(node.rowwise, bool)
    if node.rowwise:
        assert node.rowwise_for(shapes_of(case))


def test_every_node_type_declares_its_rowwise_property():
    rowwise_somewhere = {c.type for c in CASES if build(c).rowwise_for(shapes_of(c))}
    for name in library_types():
        if name in NEVER_ROWWISE:
            assert name not in rowwise_somewhere, name
        else:
            assert name in rowwise_somewhere, (
                f"{name} is row-wise in none of its cases: declare it (always_rowwise or "
                f"rowwise_for) or list it in NEVER_ROWWISE")


def test_rowwise_follows_config_and_declared_shapes():
    assert optimus.Sum("s", axis=1).rowwise
    assert not optimus.Sum("s").rowwise
    assert not optimus.Sum("s", axis=[0, 2]).rowwise
    assert not optimus.Sum("s", axis=-1).rowwise  # rank unknown: -1 may be the batch axis
    assert optimus.Sum("s", axis=-1).rowwise_for({"input": (None, 3)})
    assert not optimus.Sum("s", axis=-1).rowwise_for({"input": (None,)})
    assert optimus.Softmax("s").rowwise and not optimus.Softmax("s", axis=0).rowwise
    assert optimus.Flatten("f", ndim=2).rowwise and not optimus.Flatten("f", ndim=1).rowwise
    assert optimus.Dimshuffle("d", axes=[0, 2, 1]).rowwise
    assert not optimus.Dimshuffle("d", axes=["x", 0, 1]).rowwise
    assert optimus.Concatenate("c", axis=1).rowwise
    assert not optimus.Concatenate("c", axis=0).rowwise
    assert optimus.Dropout("d").rowwise and optimus.GaussianNoise("n", std=1.0).rowwise
    assert optimus.BatchNorm("b", input_shape=(None, 3)).rowwise
    assert optimus.CrossEntropy("c").rowwise and not optimus.CrossEntropyLoss("c").rowwise
    assert not optimus.Add("a").rowwise_for({"input_0": (None, 3), "input_1": (3,)})
    assert not optimus.Euclidean("e").rowwise  # vectors would give a scalar
    assert optimus.Euclidean("e").rowwise_for({"input_a": (None, 3), "input_b": (None, 3)})
    multiply = optimus.Multiply("m", weight_shape=(2, 4))
    assert multiply.rowwise_for({"input": (None, 2, 4)})
    assert not multiply.rowwise_for({"input": (None, 4)})


@pytest.mark.parametrize("axes, shape, expected", [
    (None, (None, 3), False), (0, (None, 3), False), (1, None, True), ((1, 2), None, True),
    (-1, None, False), (-1, (None, 3), True), (-2, (None, 3), False), ((1, -1), (None,), False),
])
def test_keeps_rows(axes, shape, expected):
    assert keeps_rows(axes, shape) is expected


def test_cases_have_splittable_batches():
    # The split check needs at least two rows in every case that claims row-wise.
    for case in CASES:
        if build(case).rowwise_for(shapes_of(case)):
            assert all(a.ndim == 0 or a.shape[0] >= 2 for a in case.inputs.values()), case.id

