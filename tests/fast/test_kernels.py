"""Every kernel family against the reference path, inside small training graphs (float32):
activations, dense, convolutions, pools, elementwise nodes, Add, the NLL losses."""
from __future__ import annotations

import numpy as np
import pytest

import optimus

from .common import (around, assert_same_training, batches_of, classifier_batches, seed004,
                     trainer)


ACTS = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "softplus", "soft_relu",
        "leaky_relu", "elu", "gelu"]


@pytest.mark.parametrize("act", ACTS)
def test_affine_activations(act):
    assert_same_training(
        lambda e: around(e, lambda s: optimus.Affine("node", s, (None, 5), act), (6,)),
        batches_of((6,)))


def test_affine_flattens_and_reshapes():
    assert_same_training(
        lambda e: around(e, lambda s: optimus.Affine("node", s, (None, 2, 3), "tanh"),
                         (2, 3, 3), first="conv"),
        batches_of((2, 3, 3)))


CONVS = {
    "valid-pool-relu": dict(weight_shape=(3, 2, 3, 3), pool_shape=(2, 2)),
    "same-tanh": dict(weight_shape=(3, 2, 3, 3), border_mode="same", act_type="tanh"),
    "full-stride": dict(weight_shape=(3, 2, 2, 2), border_mode="full",
                        downsample_shape=(2, 2), act_type="sigmoid"),
    "same-even-kernel": dict(weight_shape=(3, 2, 2, 2), border_mode="same",
                             act_type="linear"),
    "pool-gelu": dict(weight_shape=(3, 2, 3, 3), pool_shape=(2, 2), act_type="gelu"),
    "pool-softmax": dict(weight_shape=(3, 2, 3, 3), pool_shape=(2, 2), act_type="softmax"),
    "padding-stride": dict(weight_shape=(3, 2, 3, 3), padding=(1, 2), stride=(2, 1)),
}


@pytest.mark.parametrize("config", CONVS.values(), ids=CONVS.keys())
def test_conv3d(config):
    assert_same_training(
        lambda e: around(e, lambda s: optimus.Conv3D("node", s, **config), (2, 8, 8),
                         first="conv"),
        batches_of((2, 8, 8)))


@pytest.mark.parametrize("padding", [0, 1, "same", "full", (0, 2)])
def test_conv2d(padding):
    assert_same_training(
        lambda e: around(e, lambda s: optimus.Conv2D("node", s, num_filters=3, kernel_size=3,
                                                     padding=padding), (2, 7, 7),
                         first="conv"),
        batches_of((2, 7, 7)))


@pytest.mark.parametrize("kind", ["MaxPool", "AvgPool"])
@pytest.mark.parametrize("options", [dict(pool_shape=2), dict(pool_shape=3, stride=2, padding=1)],
                         ids=["plain", "overlap-padded"])
def test_pools(kind, options):
    cls = getattr(optimus, kind)
    assert_same_training(
        lambda e: around(e, lambda s: cls("node", s, **options), (2, 7, 7), first="conv"),
        batches_of((2, 7, 7)))


ELEMENTWISE = {
    "Sigmoid": lambda s: optimus.Sigmoid("node"),
    "Tanh": lambda s: optimus.Tanh("node"),
    "RectifiedLinear": lambda s: optimus.RectifiedLinear("node"),
    "SoftRectifiedLinear": lambda s: optimus.SoftRectifiedLinear("node", knee=2.0),
    "Softmax": lambda s: optimus.Softmax("node"),
    "LogSoftmax": lambda s: optimus.LogSoftmax("node"),
    "Flatten": lambda s: optimus.Flatten("node", ndim=2),
    "GaussianNoise": lambda s: optimus.GaussianNoise("node", std=0.2),
}


@pytest.mark.parametrize("make", ELEMENTWISE.values(), ids=ELEMENTWISE.keys())
def test_elementwise_nodes(make):
    assert_same_training(lambda e: around(e, make, (5,)), batches_of((5,)))


def test_add_broadcasts_and_fans_out():
    """A value feeding two ports of one Add and a bias-like broadcast input."""
    def build(engine):
        x = optimus.Input("x", (None, 4))
        a = optimus.Affine("a", x.shape, (None, 4), "tanh")
        b = optimus.Affine("b", x.shape, (None, 1), "linear")
        add = optimus.Add("add", num_inputs=3)
        penalty = optimus.WeightDecayPenalty("penalty", weight=1.0)
        loss = optimus.Output("loss")
        edges = optimus.ConnectionManager([
            (x, a.input), (x, b.input), (a.output, add.input_0), (a.output, add.input_1),
            (b.output, add.input_2), (add.output, penalty.input), (penalty.output, loss)])
        return trainer(engine, [a, b, add, penalty], edges.connections, [loss], [x], loss,
                       [a, b])
    assert_same_training(build, batches_of((4,)))


@pytest.mark.parametrize("loss_type", ["NegativeLogLikelihoodLoss", "NegativeLogLikelihood",
                                       "CategoricalCrossEntropy"])
def test_nll_unfused_and_fused(loss_type):
    """Softmax feeding the loss and another node (not fused) and a fused twin."""
    def build(engine, fused):
        x, y = optimus.Input("x", (None, 6)), optimus.Input("y", (None,), "int32")
        logits = optimus.Affine("logits", x.shape, (None, 3), "linear")
        softmax = optimus.Softmax("softmax")
        nll = getattr(optimus, loss_type)("nll")
        nodes = [logits, softmax, nll]
        pairs = [(x, logits.input), (logits.output, softmax.input),
                 (softmax.output, nll.likelihoods), (y, nll.index)]
        loss = optimus.Output("loss")
        if fused:
            pairs.append((nll.output, loss))
        else:  # the probabilities also feed a penalty: the softmax must stay
            penalty, total = optimus.WeightDecayPenalty("p", 0.1), optimus.Add("t")
            nodes += [penalty, total]
            pairs += [(softmax.output, penalty.input), (nll.output, total.input_0),
                      (penalty.output, total.input_1), (total.output, loss)]
        return trainer(engine, nodes, optimus.ConnectionManager(pairs).connections, [loss],
                       [x, y], loss, [logits])
    for fused in (True, False):
        assert_same_training(lambda e: build(e, fused), classifier_batches((6,), 3))


def test_outputs_are_c_ordered_arrays():
    graph = seed004("fast")
    conv = graph.nodes["conv0"]
    x = optimus.Input("x", (None, 1, 12, 12))
    out = optimus.Output("maps")
    predictor = optimus.Graph("p", [x], [conv], {"x": ["conv0.input"],
                                                 "conv0.output": ["maps"]}, [out])
    maps = predictor(x=np.random.rand(3, 1, 12, 12))["maps"]
    assert maps.shape == (3, 3, 12, 12) and maps.flags.c_contiguous
