"""The activation table (`optimus.activations`): each entry's function matches an independent
plain-PyTorch formula, its ``grad`` is autograd's gradient of it (float64), in-place and
out-of-place agree, the flags it declares hold, and the module documents every name."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import optimus.activations
from optimus import compat
from optimus.activations import ACTIVATIONS
from optimus.nodes.specs import ActivationSpec

from .cases import ACTS

Z = torch.linspace(-4.0, 4.0, 41, dtype=torch.float64).reshape(1, 41).repeat(3, 1) + \
    torch.tensor([[0.013], [0.031], [-0.027]], dtype=torch.float64)  # no exact kink at 0


def test_the_table_is_the_documented_one():
    assert set(ACTIVATIONS) == set(ACTS)
    doc = optimus.activations.__doc__
    for name in ACTIVATIONS:
        assert f"\n{name} " in doc, f"{name} is not documented in optimus/activations.py"


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_function_and_inplace_match_the_formula(name):
    entry = ACTIVATIONS[name]
    expected = ACTS[name](Z)
    torch.testing.assert_close(entry.function(Z), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(entry.inplace(Z.clone()), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("public", [False, True], ids=["private", "public"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_grad_is_autograds(name, public):
    entry = ACTIVATIONS[name]
    dy = torch.randn(Z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = Z.clone().requires_grad_()
    expected, = torch.autograd.grad(entry.function(z), z, dy)
    compat.use_public(public)
    try:
        y = entry.function(Z)
        got = entry.grad(dy, y, Z if entry.keeps_input else None)
    finally:
        compat.use_public(False)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_declared_monotone_means_it_commutes_with_max_pooling(name):
    """What a convolution relies on to pool before the activation."""
    entry = ACTIVATIONS[name]
    z = 3 * torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    pooled_first = entry.function(F.max_pool2d(z, 2))
    pooled_after = F.max_pool2d(entry.function(z), 2)
    assert torch.allclose(pooled_first, pooled_after, atol=1e-12) == entry.monotone


def test_parameters_of_softmax_axis_and_softplus_beta():
    z = torch.randn(2, 3, 4, dtype=torch.float64)
    spec = ActivationSpec("softmax", axis=2)
    torch.testing.assert_close(spec(z), torch.softmax(z, 2))
    soft = ActivationSpec("soft_relu", beta=2.5)
    torch.testing.assert_close(soft(z), torch.log1p(torch.exp(2.5 * z)) / 2.5)
    assert ActivationSpec("relu").params == {} and soft.params == {"beta": 2.5}
