"""The rewrites of `optimus.fast.fusion`: a max-pool inside the convolution where it changes
nothing, left apart where it would."""
from __future__ import annotations

import numpy as np
import pytest

import optimus

from .common import (assert_same_training, classifier_batches, kernels_of, trainer)


def conv_pool(engine, act="relu", pool=None, conv_output=False):
    """x -> Conv2D 3x3 (act) -> MaxPool -> Affine -> softmax cross-entropy, SGD."""
    x, y = optimus.Input("x", (None, 2, 9, 9)), optimus.Input("y", (None,), "int32")
    conv = optimus.Conv2D("conv", x.shape, num_filters=3, kernel_size=3, act_type=act)
    pooling = optimus.MaxPool("pool", conv.output.shape, **(pool or {"pool_shape": 2}))
    dense = optimus.Affine("dense", pooling.output.shape, (None, 4), "linear")
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    pairs = [(x, conv.input), (conv.output, pooling.input), (pooling.output, dense.input),
             (dense.output, xent.logits), (y, xent.index), (xent.output, loss)]
    outputs = [loss]
    if conv_output:
        maps = optimus.Output("maps")
        pairs.append((conv.output, maps))
        outputs.append(maps)
    return trainer(engine, [conv, pooling, dense, xent],
                   optimus.ConnectionManager(pairs).connections, outputs, [x, y], loss,
                   [conv, dense])


@pytest.mark.parametrize("act, bias", [("relu", 0.0), ("relu", -0.6), ("linear", 0.0)])
def test_conv_then_max_pool_pools_inside_the_convolution(act, bias):
    """Pooled before the activation: same values and gradients, also where a negative conv
    bias makes whole windows negative (relu ties them at zero)."""
    fast, _ = assert_same_training(lambda engine: conv_pool(engine, act),
                                   classifier_batches((2, 9, 9), 4, steps=4),
                                   fixed={"conv.bias": np.full(3, bias, np.float32)})
    assert kernels_of(fast) == ["Conv", "Affine", "SoftmaxNLL"]


@pytest.mark.parametrize("case", ["tanh", "overlapping", "padded", "conv_output"])
def test_conv_then_max_pool_left_apart(case):
    """Not fused where pooling first would change a result or drop a needed value."""
    options = {"tanh": {"act": "tanh"},
               "overlapping": {"pool": {"pool_shape": 3, "stride": 2}},
               "padded": {"pool": {"pool_shape": 2, "padding": 1}},
               "conv_output": {"conv_output": True}}[case]
    fast, _ = assert_same_training(lambda engine: conv_pool(engine, **options),
                                   classifier_batches((2, 9, 9), 4, steps=3))
    assert "MaxPool" in kernels_of(fast)
