"""Max-pooling without indices (inference): exactly ATen's pooling, in channels-last."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from optimus.fast.conv import max_pool_values


@pytest.mark.parametrize("shape, window", [((3, 4, 8, 8), (2, 2)), ((2, 5, 7, 9), (2, 2)),
                                           ((2, 3, 9, 6), (3, 3)), ((1, 2, 6, 5), (2, 1)),
                                           ((4, 1, 28, 28), (2, 2))])
def test_equals_aten_max_pool(shape, window):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0] = float("nan")  # propagated as ATen does
    x[-1, -1, 1, 1] = float("-inf")
    cl = x.contiguous(memory_format=torch.channels_last)
    got, expected = max_pool_values(cl, list(window)), F.max_pool2d(x, window)
    torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    assert got.is_contiguous(memory_format=torch.channels_last) or got.shape[1] == 1


def test_a_predictor_pools_without_indices_and_matches_the_reference():
    import numpy as np

    import optimus
    x = optimus.Input("x", (None, 2, 12, 12))
    conv = optimus.Conv3D("conv", x.shape, weight_shape=(4, None, 3, 3), pool_shape=(2, 2),
                          act_type="relu")
    pool = optimus.MaxPool("pool", conv.output.shape, pool_shape=2)
    out = optimus.Output("y")
    pairs = [(x, conv.input), (conv.output, pool.input), (pool.output, out)]
    graphs = [optimus.Graph("p", [x], [conv, pool], optimus.ConnectionManager(pairs).connections,
                            [out], engine=engine) for engine in ("fast", "reference")]
    optimus.random_init(conv.weights, seed=1)
    data = np.random.RandomState(0).normal(size=(5, 2, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(graphs[0](x=data)["y"], graphs[1](x=data)["y"], rtol=1e-6,
                               atol=1e-6)
