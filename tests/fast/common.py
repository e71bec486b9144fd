"""Shared helpers of the fast-engine tests: graphs built on both engines from the same weights,
the seed workloads in small, and the comparison of their training (outputs of every step,
final parameters, optimizer state) to float rounding."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

import optimus

RTOL, ATOL = 2e-4, 2e-5
Builder = Callable[[str], optimus.Graph]


def seeded_params(graph: optimus.Graph, seed: int = 0, std: float = 0.3) -> dict:
    rng = np.random.RandomState(seed)
    return {name: rng.normal(0.0, std, p.shape).astype(np.float32)
            for name, p in graph.params.items() if p.trainable}


def run_steps(graph: optimus.Graph, batches: list[dict], torch_seed: int = 0) -> list[dict]:
    torch.manual_seed(torch_seed)
    return [graph(**batch) for batch in batches]


def assert_same_training(build: Builder, batches: list[dict], seed: int = 0,
                         fixed: dict | None = None) -> tuple:
    """Build the graph on both engines from the same weights (seeded, then ``fixed``), run
    the batches, and compare every output of every step and every parameter (and optimizer
    state) at the end."""
    fast, ref = build("fast"), build("reference")
    assert fast.engine.name == "fast" and ref.engine.name == "reference"
    values = {**seeded_params(fast, seed), **(fixed or {})}
    fast.param_values, ref.param_values = values, values
    out_fast, out_ref = run_steps(fast, batches), run_steps(ref, batches)
    for step, (a, b) in enumerate(zip(out_fast, out_ref)):
        assert list(a) == list(b)
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=RTOL, atol=ATOL,
                                       err_msg=f"step {step}, output {key}")
    for key, value in ref.param_values.items():
        np.testing.assert_allclose(fast.param_values[key], value, rtol=RTOL, atol=ATOL,
                                   err_msg=key)
    if ref.optimizer is not None:
        assert_same_state(fast.optimizer, ref.optimizer)
    return fast, ref


def assert_same_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert [g["lr"] for g in sa["param_groups"]] == [g["lr"] for g in sb["param_groups"]]
    assert sa["state"].keys() == sb["state"].keys()
    for index, entries in sb["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                np.testing.assert_allclose(sa["state"][index][key].numpy(), value.numpy(),
                                           rtol=RTOL, atol=ATOL)


def classifier_batches(shape, classes: int, steps: int = 4, batch: int = 6, seed: int = 1,
                       lr: float = 0.1, dtype=np.float32) -> list[dict]:
    rng = np.random.RandomState(seed)
    return [{"x": rng.rand(batch, *shape).astype(dtype),
             "y": rng.randint(0, classes, batch).astype(np.int32), "lr": lr}
            for _ in range(steps)]


def trainer(engine, nodes, edges, outputs, inputs, loss, trained, step_rule=None, **options):
    lr = optimus.Input("lr", None)
    updates = {"lr": [p.name for node in trained for p in node.params.values()
                      if p.trainable]}
    return optimus.Graph("g", [*inputs, lr], nodes, edges, outputs, loss, updates,
                         step_rule=step_rule, engine=engine, **options)


# -- the seed workloads (small) -------------------------------------------------------------------
def seed000(engine, step_rule=None, **options):
    """Conv3D 9x9 + max-pool + relu, Affine relu, Affine, Softmax -> NLL (the notebook)."""
    x, y = optimus.Input("x", (None, 1, 16, 16)), optimus.Input("y", (None,), "int32")
    conv = optimus.Conv3D("conv", x.shape, (4, 1, 5, 5), pool_shape=(2, 2), act_type="relu")
    hidden = optimus.Affine("hidden", conv.output.shape, (None, 12), "relu")
    out = optimus.Affine("out", hidden.output.shape, (None, 5), "linear")
    softmax, nll = optimus.Softmax("softmax"), optimus.NegativeLogLikelihoodLoss("nll")
    loss, probs = optimus.Output("loss"), optimus.Output("likelihoods")
    edges = optimus.ConnectionManager([
        (x, conv.input), (conv.output, hidden.input), (hidden.output, out.input),
        (out.output, softmax.input), (softmax.output, nll.likelihoods), (y, nll.index),
        (softmax.output, probs), (nll.output, loss)]).connections
    return trainer(engine, [conv, hidden, out, softmax, nll], edges, [loss, probs], [x, y],
                   loss, [conv, hidden, out], step_rule, **options)


def seed001(engine, step_rule=None, **options):
    """Sigmoid MLP, Affine softmax straight into NLL (the fused Affine-softmax pattern)."""
    x, y = optimus.Input("x", (None, 40)), optimus.Input("y", (None,), "int64")
    hidden = optimus.Affine("hidden", x.shape, (None, 7), "sigmoid")
    out = optimus.Affine("out", hidden.output.shape, (None, 2), "softmax")
    nll = optimus.NegativeLogLikelihoodLoss("nll")
    loss = optimus.Output("loss")
    edges = optimus.ConnectionManager([(x, hidden.input), (hidden.output, out.input),
                                       (out.output, nll.likelihoods), (y, nll.index),
                                       (nll.output, loss)]).connections
    return trainer(engine, [hidden, out, nll], edges, [loss], [x, y], loss, [hidden, out],
                   step_rule, **options)


def seed002(engine, step_rule=None, **options):
    """ReLU MLP, softmax cross-entropy on logits + L2 penalties on both weights (Add)."""
    x, y = optimus.Input("x", (None, 30)), optimus.Input("y", (None,), "int64")
    hidden = optimus.Affine("hidden", x.shape, (None, 9), "relu")
    out = optimus.Affine("out", hidden.output.shape, (None, 4), "linear")
    xent = optimus.SoftmaxCrossEntropyLoss("xent")
    decay1 = optimus.WeightDecayPenalty("decay1", weight=0.005)
    decay2 = optimus.WeightDecayPenalty("decay2", weight=0.005)
    total = optimus.Add("total", num_inputs=3)
    cost, xent_out = optimus.Output("cost"), optimus.Output("xent_cost")
    edges = optimus.ConnectionManager([
        (x, hidden.input), (hidden.output, out.input), (out.output, xent.logits),
        (y, xent.index), (hidden.weights, decay1.input), (out.weights, decay2.input),
        (xent.output, total.input_0), (decay1.output, total.input_1),
        (decay2.output, total.input_2), (total.output, cost), (xent.output, xent_out)])
    return trainer(engine, [hidden, out, xent, decay1, decay2, total], edges.connections,
                   [cost, xent_out], [x, y], cost, [hidden, out], step_rule, **options)


def seed004(engine, step_rule=None, noise=0.1, **options):
    """Noise, 2x (Conv2D 3x3 pad 1 relu + MaxPool), Affine, softmax cross-entropy, Adam."""
    x, y = optimus.Input("x", (None, 1, 12, 12)), optimus.Input("y", (None,), "int64")
    noise = optimus.GaussianNoise("noise", std=noise)
    nodes, edges, shape, source = [noise], [(x, noise.input)], x.shape, noise.output
    for i, maps in enumerate((3, 4)):
        conv = optimus.Conv2D(f"conv{i}", shape, num_filters=maps, kernel_size=3, padding=1)
        pool = optimus.MaxPool(f"pool{i}", conv.output.shape, pool_shape=2)
        nodes += [conv, pool]
        edges += [(source, conv.input), (conv.output, pool.input)]
        shape, source = pool.output.shape, pool.output
    dense = optimus.Affine("dense", shape, (None, 5), "linear")
    xent = optimus.SoftmaxCrossEntropyLoss("xent")
    loss = optimus.Output("loss")
    edges += [(source, dense.input), (dense.output, xent.logits), (y, xent.index),
              (xent.output, loss)]
    trained = [n for n in nodes if n.params] + [dense]
    return trainer(engine, nodes + [dense, xent], optimus.ConnectionManager(edges).connections,
                   [loss], [x, y], loss, trained, step_rule or optimus.optim.Adam(), **options)


def skip_without_onednn(route: str) -> None:
    """oneDNN routes exist only in torch builds with oneDNN (every x86 CPU wheel, CI's
    included); elsewhere `blas` never takes them, so there is nothing to test."""
    from optimus.fast import blas
    if route.startswith("onednn") and not blas._ONEDNN:
        pytest.skip("this torch build has no oneDNN")


def around(engine, node_factory, in_shape, first="affine", act="linear", extra=()):
    """x -> trainable first layer -> node -> (extra nodes) -> WeightDecayPenalty loss, so the
    node's forward, its input gradient and its own parameters' gradients are all exercised."""
    x = optimus.Input("x", (None, *in_shape))
    if first == "affine":
        pre = optimus.Affine("pre", x.shape, (None, *in_shape), act)
    else:
        pre = optimus.Conv3D("pre", x.shape, (in_shape[0], in_shape[0], 3, 3),
                             border_mode="same", act_type=act)
    node = node_factory(pre.output.shape)
    nodes, edges, source = [pre, node], [(x, pre.input), (pre.output, node.input)], node.output
    for make in extra:
        nxt = make()
        nodes.append(nxt)
        edges.append((source, nxt.input))
        source = nxt.output
    penalty = optimus.WeightDecayPenalty("penalty", weight=0.05)
    loss, out = optimus.Output("loss"), optimus.Output("out")
    edges += [(source, penalty.input), (penalty.output, loss), (node.output, out)]
    return trainer(engine, nodes + [penalty], optimus.ConnectionManager(edges).connections,
                   [loss, out], [x], loss, [n for n in nodes if n.params])


def batches_of(shape, steps=3, batch=4, lr=0.02, seed=2):
    rng = np.random.RandomState(seed)
    return [{"x": rng.randn(batch, *shape).astype(np.float32), "lr": lr} for _ in range(steps)]


def build_pair(build):
    fast, ref = build("fast"), build("reference")
    values = seeded_params(fast)
    fast.param_values, ref.param_values = values, values
    return fast, ref


def kernels_of(graph):
    """Names of the kernels the graph's fast engine runs, in order."""
    return [op.kernel.__name__ for op in graph.engine.program.ops]
