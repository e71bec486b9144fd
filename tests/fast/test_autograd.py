"""Partial fallback (`optimus.fast.autograd`): a node without a fast kernel runs through autograd
inside the fast plan, the rest on fast kernels; the graph reports which engine runs each node
and why, and trains exactly as the reference engine does (checked in float64 on the engines,
and through `Graph.__call__` in float32)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import optimus
from optimus.errors import GraphError
from optimus.fast.kernel import _KERNELS
from optimus.nodes.base import Node

from .common import assert_same_training, classifier_batches, seeded_params, trainer


class GatedScale(Node, register=False):
    """A user's node: ``x * sigmoid(gate) + shift`` per feature, reshaping with ``view``."""

    param_shapes = {"gate": "(features,)", "shift": "(features,)"}

    def __init__(self, name: str, features: int):
        super().__init__(name, features=features)
        self.add_param("gate", (features,))
        self.add_param("shift", (features,))

    def forward(self, inputs, params, training=False):
        x = inputs["input"]
        flat = x.view(x.shape[0], -1)  # needs the default memory order
        scaled = flat * torch.sigmoid(params["gate"]).repeat(flat.shape[1] // len(
            params["gate"])) + params["shift"].repeat(flat.shape[1] // len(params["shift"]))
        return scaled.view(x.shape)


def convnet(engine, extra="dropout", rule=None, rate=0.25):
    """seed-004 in small: conv (relu) -> [BatchNorm] -> max-pool, twice, [Dropout] -> Affine
    -> softmax cross-entropy; or with a user's node after the convolutions, or a penalty
    whose weight is an Input."""
    x, y = optimus.Input("x", (None, 1, 10, 10)), optimus.Input("y", (None,), "int64")
    nodes, pairs, shape, source, inputs = [], [], x.shape, x, [x, y]
    for i, maps in enumerate((3, 4)):
        conv = optimus.Conv2D(f"conv{i}", shape, num_filters=maps, kernel_size=3, padding=1)
        nodes.append(conv)
        pairs.append((source, conv.input))
        source = conv.output
        if extra == "batchnorm":
            bn = optimus.BatchNorm(f"bn{i}", conv.output.shape, momentum=0.3)
            nodes.append(bn)
            pairs.append((source, bn.input))
            source = bn.output
        pool = optimus.MaxPool(f"pool{i}", conv.output.shape, pool_shape=2)
        nodes.append(pool)
        pairs.append((source, pool.input))
        shape, source = pool.output.shape, pool.output
    if extra == "dropout":
        drop = optimus.Dropout("drop", rate=rate)
        nodes.append(drop)
        pairs.append((source, drop.input))
        source = drop.output
    if extra == "custom":
        gated = GatedScale("gated", features=4)
        nodes.append(gated)
        pairs.append((source, gated.input))
        source = gated.output
    dense = optimus.Affine("dense", shape, (None, 3), "linear")
    xent = optimus.SoftmaxCrossEntropyLoss("xent")
    nodes += [dense, xent]
    pairs += [(source, dense.input), (dense.output, xent.logits), (y, xent.index)]
    loss = optimus.Output("loss")
    if extra == "penalty":
        wd = optimus.Input("wd", None)
        penalty = optimus.WeightDecayPenalty("penalty")  # weight from a port
        total = optimus.Add("total")
        nodes += [penalty, total]
        inputs.append(wd)
        pairs += [(dense.weights, penalty.input), (wd, penalty.weight),
                  (xent.output, total.input_0), (penalty.output, total.input_1),
                  (total.output, loss)]
    else:
        pairs.append((xent.output, loss))
    trained = [n for n in nodes if any(p.trainable for p in n.params.values())]
    return trainer(engine, nodes, optimus.ConnectionManager(pairs).connections, [loss], inputs,
                   loss, trained, rule)


FALLBACK = {"dropout": {"drop"}, "batchnorm": {"bn0", "bn1"}, "penalty": {"penalty"},
            "custom": {"gated"}}


@pytest.fixture(autouse=True)
def without_their_kernels(monkeypatch):
    """Dropout, BatchNorm and WeightDecayPenalty have fast kernels of their own (tested in
    test_cases and test_kernels); here they stand for any node without one, so their kernels
    are taken out of the registry."""
    for cls in (optimus.Dropout, optimus.BatchNorm, optimus.WeightDecayPenalty):
        monkeypatch.delitem(_KERNELS, cls, raising=False)


def auto(build):
    """A builder for `assert_same_training`: 'fast' becomes 'auto' (the graphs have nodes
    without a fast kernel)."""
    return lambda engine, **kw: build("auto" if engine == "fast" else engine, **kw)


def batches(extra, steps=4, batch=5, lr=0.05):
    out = classifier_batches((1, 10, 10), 3, steps=steps, batch=batch, lr=lr,
                             dtype=np.float32)
    for b in out:
        b["y"] = b["y"].astype(np.int64)
        if extra == "penalty":
            b["wd"] = 0.01
    return out


@pytest.mark.parametrize("extra", FALLBACK)
def test_fallback_nodes_run_through_autograd_and_the_rest_on_kernels(extra):
    graph = convnet("auto", extra)
    assert graph.engine.name == "fast"
    assert {n for n, e in graph.engines.items() if e == "autograd"} == FALLBACK[extra]
    assert set(graph.engine_reasons) == FALLBACK[extra]
    assert all(graph.engine_reasons.values())
    assert graph.engines["dense"] == "fast" and graph.engines["conv0"] == "fast"


# Not BatchNorm with Adam: the convolution biases before a BatchNorm have a zero gradient, of
# which Adam makes full-size steps out of rounding noise (in float64 as in float32).
@pytest.mark.parametrize("extra, rule", [
    *((extra, None) for extra in FALLBACK),
    *((extra, optimus.optim.Adam()) for extra in FALLBACK if extra != "batchnorm")])
def test_fallback_trains_like_the_reference_engine(extra, rule):
    """float32 through `Graph.__call__`: the same random draws (Dropout at 0.25), running
    statistics moved once per training call, the penalty's weight from its Input."""
    fast, ref = assert_same_training(auto(lambda e: convnet(e, extra, rule)), batches(extra))
    if extra == "batchnorm":
        for graph in (fast, ref):
            assert not np.allclose(graph.nodes["bn0"].running_mean.value, 0.0)


def to_float64(graph):
    for param in graph.params.values():
        param.tensor.data = param.tensor.data.double()


def run64(graph, batches_, seed=0):
    """Training calls straight on the graph's engine, in float64."""
    torch.manual_seed(seed)
    outs = []
    for b in batches_:
        tensors = {k: torch.as_tensor(v, dtype=torch.float64 if k == "x" else None)
                   for k, v in b.items() if k not in ("lr",)}
        tensors = {k: (t.double() if t.is_floating_point() else t) for k, t in tensors.items()}
        outs.append(graph.engine.train(tensors, {"lr": b["lr"]}))
    return outs


@pytest.mark.parametrize("extra, rule", [
    *((extra, None) for extra in FALLBACK),
    *((extra, optimus.optim.Adam()) for extra in FALLBACK if extra != "batchnorm")])
def test_fallback_matches_the_reference_engine_in_float64(extra, rule):
    fast, ref = convnet("auto", extra, rule), convnet("reference", extra, rule)
    values = seeded_params(fast)
    fast.param_values, ref.param_values = values, values
    to_float64(fast), to_float64(ref)
    data = batches(extra, steps=3)
    for a, b in zip(run64(fast, data), run64(ref, data)):
        assert a["xent.output" if extra != "penalty" else "total.output"].dtype == torch.float64
        for key in b:
            np.testing.assert_allclose(a[key].numpy(), b[key].detach().numpy(), rtol=1e-10,
                                       atol=1e-12, err_msg=key)
    for key, value in ref.param_values.items():
        np.testing.assert_allclose(fast.param_values[key], value, rtol=1e-10, atol=1e-12,
                                   err_msg=key)


def user_graph(engine):
    x = optimus.Input("x", (None, 4))
    a = optimus.Affine("a", x.shape, (None, 4), "relu")
    gated = GatedScale("gated", features=4)
    out = optimus.Output("out")
    edges = optimus.ConnectionManager([(x, a.input), (a.output, gated.input),
                                       (gated.output, out)])
    graph = optimus.Graph("g", [x], [a, gated], edges.connections, [out], engine=engine)
    graph.param_values = {"gated.gate": np.linspace(-1, 1, 4), "gated.shift": np.ones(4),
                          "a.weights": np.eye(4)}
    return graph


def test_engines_and_reasons_per_engine_choice():
    auto_graph = user_graph("auto")
    assert auto_graph.engine_choice == "auto" and auto_graph.engine.name == "fast"
    assert auto_graph.engines == {"a": "fast", "gated": "autograd"}
    assert auto_graph.engine_reasons == {"gated": "no fast kernel for GatedScale"}
    ref = user_graph("reference")
    assert ref.engine_choice == "reference" and ref.engine.name == "reference"
    assert ref.engines == {"a": "autograd", "gated": "autograd"}
    assert set(ref.engine_reasons) == {"a", "gated"}
    with pytest.raises(GraphError, match=r"Graph 'g': engine='fast' has no kernel for node "
                                         r"'gated' \(GatedScale: no fast kernel for "
                                         r"GatedScale\)"):
        user_graph("fast")
    x = np.random.RandomState(0).randn(5, 4)
    np.testing.assert_allclose(auto_graph(x=x)["out"], ref(x=x)["out"], rtol=1e-6)


def test_a_fully_covered_graph_reports_fast_everywhere():
    graph = convnet("fast", extra=None)
    assert set(graph.engines.values()) == {"fast"} and graph.engine_reasons == {}


def test_auto_logs_the_reasons_once_per_graph(caplog):
    with caplog.at_level(logging.INFO, logger="optimus"):
        graph = user_graph("auto")
        graph(x=np.ones((3, 4)))
        graph(x=np.ones((3, 4)))
    records = [r for r in caplog.records if r.name.startswith("optimus")]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert "'gated' (GatedScale: no fast kernel for GatedScale)" in records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="optimus"):
        user_graph("reference"), convnet("auto", extra=None)
    assert not [r for r in caplog.records if r.name.startswith("optimus")]


def test_a_dropout_rate_of_zero_is_the_identity_in_training():
    graph = convnet("auto", "dropout", rate=0.0)
    graph.param_values = seeded_params(graph)
    ref = convnet("reference", "dropout", rate=0.0)
    ref.param_values = seeded_params(ref)
    b = batches("dropout", steps=1)[0]
    torch.manual_seed(3)
    a = graph(**b)
    torch.manual_seed(4)  # other draws: with rate 0 nothing depends on them
    np.testing.assert_allclose(a["loss"], ref(**b)["loss"], rtol=1e-6)


class Live(Node, register=False):
    """A user's node that returns its parameter itself (no copy)."""

    input_names = ()

    def __init__(self, name: str):
        super().__init__(name)
        self.add_param("data", (2,))

    def forward(self, inputs, params, training=False):
        return params["data"]


@pytest.mark.parametrize("engine", ["auto", "reference"])
def test_a_node_returning_its_parameter_gives_a_copy(engine):
    """Such a node (no fast kernel) wired to an Output: the training call returns the value
    before the update, and no result is the parameter's memory."""
    x, y = optimus.Input("x", (None, 3)), optimus.Input("y", (None,), "int64")
    const = Live("const")
    dense = optimus.Affine("dense", x.shape, (None, 2), "linear")
    total, xent = optimus.Add("total"), optimus.SoftmaxCrossEntropyLoss("xent")
    loss, bias = optimus.Output("loss"), optimus.Output("bias")
    edges = optimus.ConnectionManager([
        (x, dense.input), (dense.output, total.input_0), (const.output, total.input_1),
        (total.output, xent.logits), (y, xent.index), (xent.output, loss),
        (const.output, bias)])
    graph = trainer(engine, [const, dense, total, xent], edges.connections, [loss, bias],
                    [x, y], loss, [const, dense])
    assert graph.engines["const"] == "autograd"
    const.data.value = np.ones(2)
    data = {"x": np.ones((3, 3)), "y": np.array([0, 1, 0])}
    out = graph(**data, lr=1.0)
    np.testing.assert_array_equal(out["bias"], np.ones(2))
    assert not np.allclose(const.data.value, 1.0)
    out = graph(**data, lr=0.0)
    out["bias"][:] = 7.0
    assert not np.allclose(const.data.value, 7.0)
