"""`optimus.compat`: each private PyTorch call agrees with its public fallback, a private call
that is missing, raises or disagrees is replaced by the fallback, and the fast engine trains as
the reference engine does with every fallback forced."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import optimus
from optimus import compat

from .fast.common import (around, assert_same_training, batches_of, classifier_batches, seed002,
                          seed004)

NHWC = torch.channels_last


def _r(*shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _pool_args(with_indices, nhwc):
    x = _r(3, 4, 7, 6)
    if nhwc:
        x = x.contiguous(memory_format=NHWC)
    if with_indices:
        y, idx = F.max_pool2d(x, (3, 3), (2, 2), (1, 1), return_indices=True)
        return _r(*y.shape, seed=1), x, (3, 3), (2, 2), (1, 1), idx
    y = F.avg_pool2d(x, (2, 3), (2, 1), (1, 0))
    return _r(*y.shape, seed=1), x, (2, 3), (2, 1), (1, 0)


def _conv_args(mask):
    x, w = _r(2, 3, 8, 7).contiguous(memory_format=NHWC), _r(5, 3, 3, 2, seed=1)
    dz = _r(2, 5, *F.conv2d(x, w, None, (1, 2), (1, 1)).shape[2:], seed=2)
    return dz, x, w, (1, 2), (1, 1), mask


def _bn_args():
    x, gamma, beta = _r(6, 3, 4, 4), _r(3, seed=1), _r(3, seed=2)
    _, mean, invstd = compat.batch_norm_forward.public(
        x, gamma, beta, torch.zeros(3, dtype=x.dtype), torch.ones(3, dtype=x.dtype), 0.1, 1e-5)
    return _r(*x.shape, seed=3), x, gamma, mean, invstd, 1e-5, (True, True, True)


# route name -> argument tuples (beyond the route's own probe)
ARGS = {
    "blocked_conv": [(_r(3, 1, 9, 9, dtype=torch.float32).to_mkldnn(),
                      _r(16, 1, 3, 3, dtype=torch.float32, seed=1),
                      _r(16, dtype=torch.float32, seed=2), [1, 1], [1, 1], True),
                     (_r(2, 16, 7, 7, dtype=torch.float32).to_mkldnn(),
                      _r(8, 16, 3, 3, dtype=torch.float32, seed=1),
                      _r(8, dtype=torch.float32, seed=2), [0, 0], [1, 1], False)],
    "linear": [(_r(33, 70, dtype=torch.float32), _r(20, 70, dtype=torch.float32, seed=1),
                _r(20, dtype=torch.float32, seed=2)),
               (_r(40, 64, dtype=torch.float32), _r(9, 64, dtype=torch.float32, seed=1), None)],
    "threshold_backward": [(_r(5, 6), _r(5, 6, seed=1).relu(), 0)],
    "sigmoid_backward": [(_r(5, 6), torch.sigmoid(_r(5, 6, seed=1)))],
    "tanh_backward": [(_r(5, 6), torch.tanh(_r(5, 6, seed=1)))],
    "softplus_backward": [(_r(5, 6), 10 * _r(5, 6, seed=1), 1.0, 20.0),
                          (_r(5, 6), _r(5, 6, seed=1), 3.0, 20.0)],
    "leaky_relu_backward": [(_r(5, 6), F.leaky_relu(_r(5, 6, seed=1)), 0.01)],
    "elu_backward": [(_r(5, 6), F.elu(_r(5, 6, seed=1)), 1.0)],
    "gelu_backward": [(_r(5, 6), _r(5, 6, seed=1))],
    "softmax_backward": [(_r(4, 3, 5), torch.softmax(_r(4, 3, 5, seed=1), 1), 1),
                         (_r(4, 3, 5), torch.softmax(_r(4, 3, 5, seed=1), 2), 2)],
    "log_softmax_backward": [(_r(6, 4), torch.log_softmax(_r(6, 4, seed=1), 1), 1),
                             (_r(6, 4).t(), torch.log_softmax(_r(6, 4, seed=1).t(), 0), 0)],
    "conv2d_backward": [_conv_args((True, True, True)), _conv_args((False, True, False)),
                        _conv_args((True, False, True))],
    "max_pool2d_backward": [_pool_args(True, False), _pool_args(True, True)],
    "avg_pool2d_backward": [_pool_args(False, False), _pool_args(False, True)],
    "nll_loss_forward": [(torch.log_softmax(_r(7, 5), 1), torch.tensor([0, 4, 1, 1, 3, 2, 0]))],
    "nll_loss_backward": [(torch.tensor(1.0, dtype=torch.float64), torch.log_softmax(_r(7, 5), 1),
                           torch.tensor([0, 4, 1, 1, 3, 2, 0]),
                           torch.tensor(7.0, dtype=torch.float64))],
    "batch_norm_forward": [(_r(8, 3), _r(3, seed=1), _r(3, seed=2),
                            torch.zeros(3, dtype=torch.float64),
                            torch.ones(3, dtype=torch.float64), 0.3, 1e-3)],
    "batch_norm_backward": [_bn_args()],
    "set_grad_enabled": [],
}


@pytest.fixture
def public():
    compat.use_public(True)
    yield
    compat.use_public(False)


def test_every_route_has_test_arguments():
    assert set(ARGS) == set(compat._ROUTES)


def _clone(args):
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def _assert_same(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif a is None or b is None:
        assert a is None and b is None
    elif a.is_mkldnn:  # oneDNN's blocked maps
        assert b.is_mkldnn
        _assert_same(a.to_dense(), b.to_dense())
    else:
        torch.testing.assert_close(a, b, rtol=1e-5 if a.dtype == torch.float32 else 1e-10,
                                   atol=1e-5 if a.dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("name", sorted(compat._ROUTES))
def test_private_and_public_give_the_same_numbers(name):
    route = compat._ROUTES[name]
    try:
        private = route._private()
    except Exception:  # noqa: BLE001  (not in this torch build: the fallback is all there is)
        pytest.skip(f"{name}: no private call in this torch build")
    for args in [route._probe(), *ARGS[name]]:
        _assert_same(private(*_clone(args)), route.public(*_clone(args)))


def test_the_private_calls_are_chosen_on_this_torch():
    # torch 2.13 (what CI runs) has every private call with the expected signature; a
    # fallback chosen here would mean a silent slowdown.
    compat.use_public(False)
    routes = compat.chosen()
    expected = {name: "private" for name in compat._ROUTES}
    if not torch.backends.mkldnn.is_available():
        expected["linear"] = expected["blocked_conv"] = "public"
    assert routes == expected


def test_forcing_the_fallbacks(public):
    assert set(compat.chosen().values()) == {"public"}


@pytest.mark.parametrize("failure", ["missing", "raises", "differs"])
def test_a_broken_private_call_falls_back(monkeypatch, failure, caplog):
    route = compat._ROUTES["sigmoid_backward"]

    def private():
        if failure == "missing":
            raise AttributeError("no such op")
        if failure == "raises":
            return lambda dy, y: torch.ops.aten.sigmoid_backward.default(dy, y, 1)
        return lambda dy, y: dy * y  # other numbers

    monkeypatch.setattr(route, "_private", private)
    monkeypatch.setattr(route, "impl", None)
    with caplog.at_level("DEBUG", logger="optimus.compat"):
        dy, y = _r(3, 3), torch.sigmoid(_r(3, 3, seed=1))
        torch.testing.assert_close(compat.sigmoid_backward(dy, y), dy * (1 - y) * y)
    assert route.impl is route.public
    assert "sigmoid_backward uses its public fallback" in caplog.text
    monkeypatch.undo()
    route.impl = None


def test_set_grad_enabled_both_ways(public):
    before = torch.is_grad_enabled()
    try:
        compat.set_grad_enabled(False)
        assert not torch.is_grad_enabled()
        compat.set_grad_enabled(True)
        assert torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(before)


# -- the fast engine on the fallbacks ---------------------------------------------------------
ACTS = ["relu", "sigmoid", "tanh", "softmax", "log_softmax", "softplus", "leaky_relu", "elu",
        "gelu"]


@pytest.mark.parametrize("act", ACTS)
def test_fast_engine_on_fallbacks_trains_like_the_reference_affine(public, act):
    assert_same_training(
        lambda e: around(e, lambda s: optimus.Affine("node", s, (None, 5), act), (6,)),
        batches_of((6,)))


@pytest.mark.parametrize("kind", ["MaxPool", "AvgPool"])
def test_fast_engine_on_fallbacks_trains_like_the_reference_pools(public, kind):
    cls = getattr(optimus, kind)
    assert_same_training(
        lambda e: around(e, lambda s: cls("node", s, pool_shape=3, stride=2, padding=1),
                         (2, 7, 7), first="conv"),
        batches_of((2, 7, 7)))


def test_fast_engine_on_fallbacks_trains_the_seed_workloads(public):
    assert_same_training(seed004, classifier_batches((1, 12, 12), 5, steps=3, lr=3e-3))
    assert_same_training(seed002, classifier_batches((30,), 4, steps=3, batch=40))
    assert set(compat.chosen().values()) == {"public"}


def test_fallback_numbers_are_those_of_the_private_path():
    """The same training, once on the private calls and once on the fallbacks: the same
    parameters to float rounding."""
    batches = classifier_batches((1, 12, 12), 5, steps=2, lr=3e-3)
    results = []
    for forced in (False, True):
        compat.use_public(forced)
        try:
            fast, _ = assert_same_training(seed004, batches)
        finally:
            compat.use_public(False)
        results.append(fast.param_values)
    for key, value in results[0].items():
        np.testing.assert_allclose(results[1][key], value, rtol=1e-5, atol=1e-6, err_msg=key)
