"""The reference path (`optimus.compile`) and what every graph call does on top of an engine:
optimizer construction, chunked inference, options."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import optimus
from optimus import chunking
from optimus.compile import ReferenceEngine, build_optimizer
from optimus.errors import GraphError
from optimus.nodes.base import Node


def mlp(engine="auto", chunk_size="auto", rows_out=True):
    """x (None, 6) -> Affine relu -> Affine softmax; optional NLL loss output."""
    x, y = optimus.Input("x", (None, 6)), optimus.Input("y", (None,), "int32")
    hidden = optimus.Affine("hidden", x.shape, (None, 5), "relu")
    out = optimus.Affine("out", hidden.output.shape, (None, 3), "softmax")
    nll = optimus.NegativeLogLikelihoodLoss("nll")
    probs, loss = optimus.Output("probs"), optimus.Output("loss")
    pairs = [(x, hidden.input), (hidden.output, out.input), (out.output, probs)]
    inputs, outputs, nodes = [x], [probs], [hidden, out]
    if not rows_out:
        pairs += [(out.output, nll.likelihoods), (y, nll.index), (nll.output, loss)]
        inputs, outputs, nodes = [x, y], [probs, loss], [hidden, out, nll]
    graph = optimus.Graph("mlp", inputs, nodes, optimus.ConnectionManager(pairs).connections,
                          outputs, engine=engine, chunk_size=chunk_size)
    for i, node in enumerate((hidden, out)):
        optimus.random_init(node.weights, 0.0, 0.5, seed=i)
    return graph


def test_build_optimizer_names_one_group_per_rate():
    a = optimus.Affine("a", (None, 2), (None, 2))
    groups = {"lr_w": [a.weights], "lr_b": [a.bias]}
    opt = build_optimizer(optimus.optim.SGD(), groups)
    assert [g["name"] for g in opt.param_groups] == ["lr_w", "lr_b"]
    assert opt.param_groups[0]["params"][0] is a.weights.tensor
    assert build_optimizer(optimus.optim.SGD(), {}) is None


def test_reference_engine_hands_out_copies_of_parameters():
    x, w = optimus.Input("x", (None, 2)), optimus.Output("w")
    a = optimus.Affine("a", x.shape, (None, 2))
    out = optimus.Output("out")
    graph = optimus.Graph("g", [x], [a], {"x": ["a.input"], "a.output": ["out"],
                                          "a.weights": ["w"]}, [out, w], engine="reference")
    assert isinstance(graph.engine, ReferenceEngine)
    result = graph(x=np.ones((1, 2)))
    result["w"][:] = 5.0
    assert np.all(a.weights.value == 0.0)


def test_graph_optimizer_is_the_engines():
    x, y = optimus.Input("x", (None, 6)), optimus.Input("y", (None,), "int32")
    lr = optimus.Input("lr", None)
    out = optimus.Affine("out", x.shape, (None, 3), "softmax")
    nll = optimus.NegativeLogLikelihoodLoss("nll")
    loss = optimus.Output("loss")
    for engine in ("fast", "reference"):
        graph = optimus.Graph("g", [x, y, lr], [out, nll],
                              {"x": ["out.input"], "out.output": ["nll.likelihoods"],
                               "y": ["nll.index"], "nll.output": ["loss"]}, [loss], loss,
                              {"lr": ["out.weights"]}, engine=engine)
        assert graph.engine.name == engine
        assert graph.trainer is graph.engine
        assert graph.optimizer is graph.engine.optimizer
        assert isinstance(graph.optimizer, torch.optim.SGD)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_chunked_inference_matches_one_pass_and_holds_one_chunk(engine):
    whole, chunked = mlp(engine, chunk_size=None), mlp(engine, chunk_size=7)
    chunked.param_values = whole.param_values
    seen = []
    infer = chunked.engine.infer
    chunked.engine.infer = lambda tensors, fresh: (seen.append((len(tensors["x"]), fresh))
                                                   or infer(tensors, fresh))
    x = np.random.RandomState(0).randn(50, 6)
    np.testing.assert_allclose(chunked(x=x)["probs"], whole(x=x)["probs"], rtol=1e-6)
    assert seen == [(7, True)] + [(7, False)] * 6 + [(1, False)]  # fresh: a call's first


def test_auto_chunk_size_and_when_chunking_does_not_apply():
    graph = mlp()
    assert graph._chunk_rows is not None and graph._chunk_rows >= 64
    assert mlp(chunk_size=None)._chunk_rows is None
    # A scalar output (the loss) needs the whole batch at once.
    assert mlp(chunk_size=5, rows_out=False)._chunk_rows is None
    # A node that does not declare itself row-wise: 'auto' does not chunk; an int does.
    x, out = optimus.Input("x", (None, 4)), optimus.Output("out")
    across = optimus.Softmax("across", axis=0)
    edges = {"x": ["across.input"], "across.output": ["out"]}
    assert optimus.Graph("g", [x], [across], edges, [out])._chunk_rows is None
    assert optimus.Graph("g", [x], [across], edges, [out], chunk_size=3)._chunk_rows == 3


@pytest.mark.parametrize("width, rows", [
    (1_000, 1048),  # 8 KB of activations a row: 8 MB a chunk
    (10_000, 256),  # 80 KB: 256 rows (20 MB) rather than 8 MB's 104
    (20_000, 209),  # 160 KB: 256 rows would hold 41 MB, so 32 MB's worth
    (250_000, 64),  # 2 MB: 32 MB holds 16 rows, raised to the floor of 64
])
def test_auto_chunk_rows_from_the_activation_sizes(width, rows):
    """The input and one activation as wide, float32: ``8 * width`` bytes a row."""
    x, out = optimus.Input("x", (None, width)), optimus.Output("out")
    soft = optimus.Softmax("soft", axis=1)
    graph = optimus.Graph("g", [x], [soft], {"x": ["soft.input"], "soft.output": ["out"]},
                          [out])
    assert graph._chunk_rows == rows


@pytest.mark.parametrize("width, rows", [(1_000, 134_217), (250_000, 536), (10**8, 64)])
def test_auto_chunks_on_an_accelerator_bound_memory_alone(width, rows):
    """On a GPU a chunk is ~1 GiB of activations (launches, not caches, cost there)."""
    x, out = optimus.Input("x", (None, width)), optimus.Output("out")
    soft = optimus.Softmax("soft", axis=1)
    graph = optimus.Graph("g", [x], [soft], {"x": ["soft.input"], "soft.output": ["out"]},
                          [out])
    assert chunking.chunk_rows("auto", graph.inputs, graph.order, graph._source_of,
                               graph.shapes, ["soft.output"], torch.device("cuda")) == rows


class Double(Node, register=False):
    """A user's node: ``2 * x``, declared row-wise or not."""

    def __init__(self, name, rowwise=True):
        super().__init__(name)
        self.declared = rowwise

    def rowwise_for(self, in_shapes):
        return self.declared

    def forward(self, inputs, params, training=False):
        return 2 * inputs["input"]


def test_auto_chunking_follows_the_declared_row_wise_property():
    """A node without a fast kernel (a user's, through autograd) that declares itself row-wise
    chunks; a node that is not row-wise (a Softmax over the batch axis) does not."""
    x, out = optimus.Input("x", (None, 4)), optimus.Output("out")
    double = Double("double")
    graph = optimus.Graph("g", [x], [double], {"x": ["double.input"],
                                               "double.output": ["out"]}, [out])
    assert double.rowwise and graph.engines == {"double": "autograd"}
    assert graph._chunk_rows is not None
    data = np.random.RandomState(0).randn(3 * graph._chunk_rows + 5, 4)
    np.testing.assert_allclose(graph(x=data)["out"], 2 * data, rtol=1e-6)
    assert not Double("d", rowwise=False).rowwise
    graph = optimus.Graph("g", [x], [Double("d", rowwise=False)],
                          {"x": ["d.input"], "d.output": ["out"]}, [out])
    assert graph._chunk_rows is None
    across = optimus.Softmax("across", axis=0)
    graph = optimus.Graph("g", [x], [across], {"x": ["across.input"],
                                               "across.output": ["out"]}, [out])
    assert not across.rowwise_for({"input": (None, 4)})
    assert graph._chunk_rows is None


@pytest.mark.parametrize("chunk_size", [0, -2, 2.5, True, "big"])
def test_chunk_size_is_checked(chunk_size):
    with pytest.raises(GraphError, match="chunk_size must be a positive int"):
        mlp(chunk_size=chunk_size)
