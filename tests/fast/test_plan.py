"""Static plans (`optimus.fast.plan`): which parameters get a fused update, which go to the
optimizer, and how nodes are lowered."""
from __future__ import annotations

import optimus
from optimus.fast import AutogradKernel
from optimus.fast.kernel import _KERNELS

from .common import assert_same_training, classifier_batches, trainer


def test_penalty_with_a_non_constant_gradient_is_not_folded():
    """A penalty whose gradient is scaled by the data (through a sigmoid) cannot become a
    fixed decay of the fused SGD update; the weights then go to the optimizer."""
    def build(engine):
        x, y = optimus.Input("x", (None, 6)), optimus.Input("y", (None,), "int32")
        logits = optimus.Affine("logits", x.shape, (None, 3), "linear")
        xent = optimus.SoftmaxCrossEntropyLoss("xent")
        penalty, squash = optimus.WeightDecayPenalty("p", 0.3), optimus.Sigmoid("squash")
        total, loss = optimus.Add("total"), optimus.Output("loss")
        pairs = [(x, logits.input), (logits.output, xent.logits), (y, xent.index),
                 (logits.weights, penalty.input), (penalty.output, squash.input),
                 (xent.output, total.input_0), (squash.output, total.input_1),
                 (total.output, loss)]
        return trainer(engine, [logits, xent, penalty, squash, total],
                       optimus.ConnectionManager(pairs).connections, [loss], [x, y], loss,
                       [logits])
    fast, _ = assert_same_training(build, classifier_batches((6,), 3))
    plan = next(iter(fast.engine._plans.values()))
    assert [fast.engine.program.slot["logits.weights"]] == [s for _, s in plan.grads]


def test_lowering_gives_nodes_without_a_kernel_the_autograd_kernel(monkeypatch):
    """By exact class: a registered kernel's node, and a node type taken out of the registry
    (its reason is kept); parameters bind by short name."""
    monkeypatch.delitem(_KERNELS, optimus.Tanh)
    x, out = optimus.Input("x", (None, 2, 3)), optimus.Output("out")
    dense = optimus.Affine("dense", x.shape, (None, 3), "relu")
    squash = optimus.Tanh("squash")
    edges = optimus.ConnectionManager([(x, dense.input), (dense.output, squash.input),
                                       (squash.output, out)])
    graph = optimus.Graph("g", [x], [dense, squash], edges.connections, [out])
    ops = graph.engine.program.ops
    assert [op.kernel for op in ops] == [_KERNELS[optimus.Affine], AutogradKernel]
    assert graph.engine_reasons == {"squash": "no fast kernel for Tanh"}
    assert set(ops[0].ins) == {"input", "weights", "bias"}
