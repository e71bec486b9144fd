"""Shape inference without torch (`Node.static_infer`) gives exactly what the meta-tensor
probes give, for every node type that has it, over inputs of several ranks and dtypes; where
the probes would refuse an input, the static rule defers to them."""
from __future__ import annotations

import pytest

import optimus
from optimus import registry
from optimus.nodes.base import Node

CONFIGS = {
    "Sigmoid": {}, "Tanh": {}, "RectifiedLinear": {}, "SoftRectifiedLinear": {"knee": 2.0},
    "Softmax": {}, "LogSoftmax": {"axis": -1}, "Log": {"epsilon": 1e-3}, "Sqrt": {},
    "Power": {"exponent": 2}, "Normalize": {}, "NormalizeDim": {"axis": 1},
    "Dropout": {}, "GaussianNoise": {"std": 0.1},
    "BatchNorm": {"input_shape": [None, 3, 4]},
    "Affine": {"input_shape": [None, 12], "output_shape": [None, 2, 3]},
    "CenteredAffine": {"input_shape": [None, 3, 4], "output_shape": [None, 5]},
}
SHAPES = [(), (None,), (4,), (None, 3), (5, 3, 4), (None, 3, 4), (2, 12), (None, 12, 1)]
DTYPES = ["float32", "float64", "int64"]


def probed(node: Node, shape, dtype):
    node.static_infer = lambda *args: None  # instance attribute: the probes only
    try:
        return node.infer({"input": shape}, {"input": dtype})
    except optimus.ConfigError:
        return "refused"
    finally:
        del node.static_infer


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_static_shapes_equal_the_probes(kind):
    node = registry.lookup("node", kind)(name="n", **CONFIGS[kind])
    answered = 0
    for shape in SHAPES:
        for dtype in DTYPES:
            static = node.static_infer({"input": shape}, {"input": dtype})
            if static is not None:
                answered += 1
                assert static == probed(node, shape, dtype), (shape, dtype)
    assert answered > 0  # the rule is used at all


def test_every_shape_preserving_type_is_covered():
    preserving = {name for name, cls in registry.registered("node").items()
                  if cls.__module__.startswith("optimus.") and cls.preserves_shape}
    assert preserving <= set(CONFIGS)


def test_a_long_chain_builds_without_probing(monkeypatch):
    """A 2,000-node chain of activations and Affines infers every shape statically."""
    calls = []
    real = Node.outputs_of

    def counting(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Node, "outputs_of", counting)
    x = optimus.Input("x", (None, 8))
    nodes, edges, previous = [], {}, "x"
    for i in range(2000):
        node = (optimus.Affine(f"n{i}", (None, 8), (None, 8), "linear") if i % 4 == 0
                else optimus.Tanh(f"n{i}"))
        nodes.append(node)
        edges[previous] = [f"n{i}.input"]
        previous = f"n{i}.output"
    edges[previous] = ["y"]
    graph = optimus.Graph("chain", [x], nodes, edges, [optimus.Output("y")], engine="reference")
    assert graph.shapes["y"] == (None, 8)
    assert calls == []


@pytest.mark.parametrize("kind", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_classifier_losses_infer_statically_as_probed(kind):
    node = registry.lookup("node", kind)(name="loss")
    scores = node.input_names[0]
    answered = 0
    for shape in [(None, 3), (4, 3), (None,), (None, 3, 2), (2, 3)]:
        for index in [(None,), (4,), (None, 1), ()]:
            for dtypes in [{scores: "float32", "index": "int64"},
                           {scores: "float32", "index": "int32"},
                           {scores: "float64", "index": "int64"}]:
                shapes = {scores: shape, "index": index}
                static = node.static_infer(shapes, dtypes)
                if static is None:
                    continue
                answered += 1
                node.static_infer = lambda *args: None
                try:
                    assert static == node.infer(shapes, dtypes), (shapes, dtypes)
                finally:
                    del node.static_infer
    assert answered > 0
