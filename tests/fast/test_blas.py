"""The BLAS routes of `optimus.fast.blas`: each library and weight-gradient route trains like
the reference path and agrees with float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import optimus

from .common import (assert_same_training, classifier_batches, seed000, seed002, seed004,
                     skip_without_onednn)


@pytest.mark.parametrize("library", ["onednn", "mkl"])
def test_forward_and_input_gradient_products_in_each_library(monkeypatch, library):
    from optimus.fast import blas
    skip_without_onednn(library)
    if library == "onednn":
        for name in ("ONEDNN_MACS", "ONEDNN_ROWS", "ONEDNN_INNER"):
            monkeypatch.setattr(blas, name, 0)
    else:
        monkeypatch.setattr(blas, "ONEDNN_MACS", 10**12)
    assert_same_training(seed000, classifier_batches((1, 16, 16), 5, batch=20))
    assert_same_training(seed002, classifier_batches((30,), 4, steps=3, batch=40))


def test_weight_gradient_route_by_shape():
    """The routes `optimus.fast.blas` documents for the seed layers and the dtypes it leaves
    to ``torch.mm``."""
    from optimus.fast import blas

    def route(rows, n_in, n_out, dtype=torch.float32):
        return blas.weight_route(torch.zeros(rows, n_in, dtype=dtype),
                                 torch.zeros(rows, n_out, dtype=dtype))

    if blas._ONEDNN:
        assert route(256, 784, 100) == "onednn_t"  # seed 002, hidden layer
        assert route(128, 1024, 1024) == "onednn"
    assert route(256, 784, 100, torch.float64) == "mkl"
    assert route(256, 100, 10) == "mkl_t"  # seed 002, classifier
    assert route(25, 1500, 512) == "mkl"  # seed 000: few rows
    assert route(5, 13989, 20) == "mkl"  # seed 001


@pytest.mark.parametrize("route", ["onednn", "onednn_t", "mkl_t", "mkl"])
def test_every_weight_gradient_route_trains_like_the_reference(monkeypatch, route):
    """Each way `blas` computes ``x.T @ dz``: fused into plain SGD (seed 002, weight decay
    folded in) and handed to Adam (seed 004, a transposed gradient made contiguous)."""
    from optimus.fast import blas
    skip_without_onednn(route)
    monkeypatch.setattr(blas, "weight_route", lambda x, dz, sgd=False: route)
    assert_same_training(seed002, classifier_batches((30,), 4, steps=3, batch=40))
    assert_same_training(seed004, classifier_batches((1, 12, 12), 5, steps=3, lr=3e-3))


@pytest.mark.parametrize("route", ["onednn", "onednn_t", "mkl_t", "mkl"])
def test_weight_gradient_routes_agree_with_float64(monkeypatch, route):
    from optimus.fast import blas
    skip_without_onednn(route)
    gen = torch.Generator().manual_seed(0)
    x, dz = torch.randn(130, 70, generator=gen), torch.randn(130, 110, generator=gen)
    w = torch.randn(70, 110, generator=gen)
    expected_grad = x.double().t() @ dz.double()
    grad = blas.weight_grad(x, dz, route)
    assert grad.shape == (70, 110)
    np.testing.assert_allclose(grad.double().numpy(), expected_grad.numpy(), rtol=1e-4,
                               atol=1e-4)
    expected_w = (1 - 0.1 * 0.5) * w.double() - 0.1 * expected_grad
    monkeypatch.setattr(blas, "weight_route", lambda a, b, sgd=False: route)
    blas.sgd_weight_step(w, x, dz, lr=0.1, decay=0.5)
    np.testing.assert_allclose(w.double().numpy(), expected_w.numpy(), rtol=1e-4, atol=1e-4)


def test_the_fused_bias_step_agrees_with_float64():
    from optimus.fast import blas
    gen = torch.Generator().manual_seed(1)
    dz, b = torch.randn(130, 11, generator=gen), torch.randn(11, generator=gen)
    expected = (1 - 0.1 * 0.5) * b.double() - 0.1 * dz.double().sum(0)
    blas.sgd_bias_step(b, dz, torch.ones(130), lr=0.1, decay=0.5)
    np.testing.assert_allclose(b.double().numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_batch_sizes_changing_at_every_step_train_like_the_reference():
    """A dense kernel keeps its routed products, and the ones of its fused bias step, per
    batch size: steps whose batch size changes every time, over more sizes than it keeps
    (`optimus.fast.dense.MAX_BATCH_SIZES`), with plain SGD (fused steps) and Adam
    (gradients handed to the optimizer)."""
    from optimus.fast import dense
    sizes = [1, 7, 3, 7, *range(8, 9 + dense.MAX_BATCH_SIZES)]
    batches = [classifier_batches((30,), 4, steps=1, batch=n, seed=n)[0] for n in sizes]
    fast, _ = assert_same_training(seed002, batches)
    kernels = [kernel for plan in fast.engine._plans.values() for kernel, _ in plan.forward
               if isinstance(kernel, dense.Affine)]
    assert len(kernels) == 2
    for kernel in kernels:
        assert 0 < len(kernel.forwards) <= dense.MAX_BATCH_SIZES
        assert 0 < len(kernel.backwards) <= dense.MAX_BATCH_SIZES
    assert_same_training(lambda engine: seed002(engine, optimus.optim.Adam()), batches[:6])
