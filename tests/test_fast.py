"""The fast path (`optimus.fast`) against the reference path (`optimus.compile`): same losses,
outputs and parameters, to float rounding, over several training steps, for every kernel and
the seed workloads; and the graph semantics both paths keep."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

import optimus
from optimus.errors import GraphError
from optimus.fast import covered_node_types

RTOL, ATOL = 2e-4, 2e-5
Builder = Callable[[str], optimus.Graph]


# -- helpers ------------------------------------------------------------------------------------
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


def test_seed000_convnet_sgd():
    fast, _ = assert_same_training(seed000, classifier_batches((1, 16, 16), 5))
    assert fast.optimizer.state_dict()["state"] == {}  # plain SGD: no state


def test_seed001_mlp_fused_affine_softmax():
    assert_same_training(seed001, classifier_batches((40,), 2, steps=6, batch=5, lr=0.5))


def test_seed002_mlp_with_weight_decay():
    assert_same_training(seed002, classifier_batches((30,), 4, steps=5))


def test_seed004_convnet_adam_with_noise():
    fast, _ = assert_same_training(seed004, classifier_batches((1, 12, 12), 5, lr=3e-3))
    assert fast.optimizer.state_dict()["state"]  # Adam keeps moments


def test_large_batches_take_the_shape_tuned_paths():
    """Batches past the row thresholds: the routed weight gradient, the transposed
    log-softmax, the weight-decay fold."""
    batches = classifier_batches((30,), 4, steps=3, batch=130)
    assert_same_training(seed002, batches)
    assert_same_training(seed004, classifier_batches((1, 12, 12), 5, steps=3, batch=130,
                                                     lr=3e-3))


def skip_without_onednn(route: str) -> None:
    """oneDNN routes exist only in torch builds with oneDNN (every x86 CPU wheel, CI's
    included); elsewhere `blas` never takes them, so there is nothing to test."""
    from optimus.fast import blas
    if route.startswith("onednn") and not blas._ONEDNN:
        pytest.skip("this torch build has no oneDNN")


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
    monkeypatch.setattr(blas, "weight_route", lambda x, dz: route)
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
    monkeypatch.setattr(blas, "weight_route", lambda a, b: route)
    blas.sgd_weight_step(w, x, dz, lr=0.1, decay=0.5)
    np.testing.assert_allclose(w.double().numpy(), expected_w.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rule", [optimus.optim.SGD(momentum=0.9, nesterov=True),
                                  optimus.optim.SGD(weight_decay=0.01),
                                  optimus.optim.AdamW(), optimus.optim.RMSProp(),
                                  optimus.optim.Adagrad()],
                         ids=["nesterov", "sgd-decay", "adamw", "rmsprop", "adagrad"])
def test_step_rules_match_reference(rule):
    assert_same_training(lambda engine: seed002(engine, rule),
                         classifier_batches((30,), 4, steps=4))


# -- every kernel ---------------------------------------------------------------------------------
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


def _kernels(graph):
    return [op.kernel.__name__ for op in graph.engine.program.ops]


@pytest.mark.parametrize("act, bias", [("relu", 0.0), ("relu", -0.6), ("linear", 0.0)])
def test_conv_then_max_pool_pools_inside_the_convolution(act, bias):
    """Pooled before the activation: same values and gradients, also where a negative conv
    bias makes whole windows negative (relu ties them at zero)."""
    fast, _ = assert_same_training(lambda engine: conv_pool(engine, act),
                                   classifier_batches((2, 9, 9), 4, steps=4),
                                   fixed={"conv.bias": np.full(3, bias, np.float32)})
    assert _kernels(fast) == ["Conv", "Affine", "SoftmaxNLL"]


@pytest.mark.parametrize("case", ["tanh", "overlapping", "padded", "conv_output"])
def test_conv_then_max_pool_left_apart(case):
    """Not fused where pooling first would change a result or drop a needed value."""
    options = {"tanh": {"act": "tanh"},
               "overlapping": {"pool": {"pool_shape": 3, "stride": 2}},
               "padded": {"pool": {"pool_shape": 2, "padding": 1}},
               "conv_output": {"conv_output": True}}[case]
    fast, _ = assert_same_training(lambda engine: conv_pool(engine, **options),
                                   classifier_batches((2, 9, 9), 4, steps=3))
    assert "MaxPool" in _kernels(fast)


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


def test_outputs_are_c_ordered_arrays():
    graph = seed004("fast")
    conv = graph.nodes["conv0"]
    x = optimus.Input("x", (None, 1, 12, 12))
    out = optimus.Output("maps")
    predictor = optimus.Graph("p", [x], [conv], {"x": ["conv0.input"],
                                                 "conv0.output": ["maps"]}, [out])
    maps = predictor(x=np.random.rand(3, 1, 12, 12))["maps"]
    assert maps.shape == (3, 3, 12, 12) and maps.flags.c_contiguous


def test_every_registered_kernel_is_exercised():
    tested = {"Affine", "Conv3D", "Conv2D", "MaxPool", "AvgPool", "Add",
              "NegativeLogLikelihoodLoss", "NegativeLogLikelihood", "CategoricalCrossEntropy",
              "SoftmaxCrossEntropyLoss", "WeightDecayPenalty", *ELEMENTWISE}
    assert set(covered_node_types()) == tested


# -- semantics both paths keep -------------------------------------------------------------------
def test_auto_falls_back_for_uncovered_nodes_and_fast_names_them():
    def build(engine):
        x = optimus.Input("x", (None, 4))
        a = optimus.Affine("a", x.shape, (None, 4), "relu")
        bn = optimus.BatchNorm("bn", a.output.shape)
        out = optimus.Output("out")
        edges = optimus.ConnectionManager([(x, a.input), (a.output, bn.input), (bn.output, out)])
        return optimus.Graph("g", [x], [a, bn], edges.connections, [out], engine=engine)
    assert build("auto").engine.name == "reference"
    with pytest.raises(GraphError, match=r"Graph 'g': engine='fast' does not cover node "
                                         r"'bn' \(BatchNorm\)"):
        build("fast")


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_outputs_are_computed_before_the_update(engine):
    """Including an output wired straight from a parameter, and from an Input."""
    x, y = optimus.Input("x", (None, 3)), optimus.Input("y", (None,), "int32")
    lr = optimus.Input("lr", None)
    affine = optimus.Affine("affine", x.shape, (None, 2), "softmax")
    nll = optimus.NegativeLogLikelihoodLoss("nll")
    loss, w, echo = optimus.Output("loss"), optimus.Output("w"), optimus.Output("echo")
    edges = optimus.ConnectionManager([(x, affine.input), (affine.output, nll.likelihoods),
                                       (y, nll.index), (nll.output, loss),
                                       (affine.weights, w), (x, echo)])
    graph = optimus.Graph("g", [x, y, lr], [affine, nll], edges.connections, [loss, w, echo],
                          loss, {"lr": ["affine.weights", "affine.bias"]}, engine=engine)
    affine.weights.value = np.ones((3, 2))
    data = np.arange(6.0).reshape(2, 3)
    out = graph(x=data, y=np.array([0, 1], np.int32), lr=1.0)
    np.testing.assert_array_equal(out["w"], np.ones((3, 2)))
    assert not np.allclose(affine.weights.value, 1.0)
    np.testing.assert_array_equal(out["echo"], data)
    out["w"][:] = 7.0  # a copy, not the live parameter
    assert not np.allclose(affine.weights.value, 7.0)


def two_rate_graph(engine):
    x, y = optimus.Input("x", (None, 5)), optimus.Input("y", (None,), "int32")
    lr_a, lr_b = optimus.Input("lr_a", None), optimus.Input("lr_b", None)
    a = optimus.Affine("a", x.shape, (None, 4), "relu")
    b = optimus.Affine("b", a.output.shape, (None, 3), "linear")
    frozen = optimus.Affine("frozen", x.shape, (None, 3), "linear")
    add, sm = optimus.Add("add"), optimus.Softmax("sm")
    nll = optimus.NegativeLogLikelihoodLoss("nll")
    loss = optimus.Output("loss")
    edges = optimus.ConnectionManager([
        (x, a.input), (a.output, b.input), (x, frozen.input), (b.output, add.input_0),
        (frozen.output, add.input_1), (add.output, sm.input), (sm.output, nll.likelihoods),
        (y, nll.index), (nll.output, loss)])
    return optimus.Graph("g", [x, y, lr_a, lr_b], [a, b, frozen, add, sm, nll],
                         edges.connections, [loss], loss,
                         {"lr_a": ["a.weights", "a.bias"], "lr_b": ["b.weights", "b.bias"]},
                         step_rule=optimus.optim.Adam(), engine=engine)


def test_a_group_at_zero_does_not_move_and_unwired_parameters_never_move():
    rng = np.random.RandomState(0)
    batches = [{"x": rng.randn(4, 5).astype(np.float32),
                "y": rng.randint(0, 3, 4).astype(np.int32), "lr_a": 0.0, "lr_b": 0.01}
               for _ in range(3)]
    batches += [{**batches[0], "lr_a": 0.01}, {**batches[1], "lr_a": 0.01, "lr_b": 0.0}]
    fast, ref = build_pair(two_rate_graph)
    before = fast.param_values
    for batch in batches[:3]:
        fast(**batch)
    after = fast.param_values
    for key in ("a.weights", "a.bias", "frozen.weights", "frozen.bias"):
        np.testing.assert_array_equal(after[key], before[key])
    assert not np.array_equal(after["b.weights"], before["b.weights"])
    assert_same_training(two_rate_graph, batches)


def build_pair(build):
    fast, ref = build("fast"), build("reference")
    values = seeded_params(fast)
    fast.param_values, ref.param_values = values, values
    return fast, ref


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_rate_zero_evaluates_without_training_behaviour(engine):
    graph = seed004(engine)
    graph.param_values = seeded_params(graph)
    batch = classifier_batches((1, 12, 12), 5, steps=1, lr=0.0)[0]
    before = graph.param_values
    first, second = graph(**batch), graph(**batch)
    np.testing.assert_array_equal(first["loss"], second["loss"])  # no noise
    for key, value in graph.param_values.items():
        np.testing.assert_array_equal(value, before[key])
    assert graph.optimizer.state_dict()["state"] == {}


def test_param_values_setter_is_seen_and_nodes_are_shared():
    graph = seed001("fast")
    batch = {**classifier_batches((40,), 2, steps=1, batch=5)[0], "lr": 0.0}
    graph.param_values = seeded_params(graph, seed=3)
    first = graph(**batch)["loss"]
    graph.param_values = seeded_params(graph, seed=4)
    assert graph(**batch)["loss"] != first
    # Predictors built from the same nodes see the trainer's updates.
    hidden, out = graph.nodes["hidden"], graph.nodes["out"]
    x, prob = optimus.Input("x", (None, 40)), optimus.Output("prob")
    edges = optimus.ConnectionManager([(x, hidden.input), (hidden.output, out.input),
                                       (out.output, prob)]).connections
    fast = optimus.Graph("p", [x], [hidden, out], edges, [prob])
    ref = optimus.Graph("p", [x], [hidden, out], edges, [prob], engine="reference")
    assert fast.engine.name == "fast"
    before = fast(x=batch["x"])["prob"]
    graph(**{**batch, "lr": 1.0})
    after = fast(x=batch["x"])["prob"]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, ref(x=batch["x"])["prob"], rtol=RTOL, atol=ATOL)


def test_inputs_float64_readonly_noncontiguous_and_int_labels():
    fast, ref = build_pair(seed000)
    rng = np.random.RandomState(5)
    x = rng.rand(6, 1, 16, 16)  # float64
    x.flags.writeable = False
    wide = np.zeros((6, 1, 16, 32))
    wide[..., ::2] = x  # a strided view
    y = rng.randint(0, 5, 6)  # int64 into an int32 Input
    for data in (x, wide[..., ::2]):
        a = fast(x=data, y=y, lr=0.0)
        b = ref(x=data.astype(np.float32), y=y.astype(np.int32), lr=0.0)
        np.testing.assert_allclose(a["likelihoods"], b["likelihoods"], rtol=RTOL, atol=ATOL)
    t = torch.tensor(x, requires_grad=True)
    np.testing.assert_allclose(fast(x=t, y=y, lr=0.0)["loss"], a["loss"], rtol=1e-6)


@pytest.mark.parametrize("engine", ["bogus", "", None])
def test_engine_option_is_checked(engine):
    with pytest.raises(GraphError, match="engine="):
        seed001(engine)


# -- devices ------------------------------------------------------------------------------------
def test_unavailable_device_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(GraphError, match="device 'cuda' is not available"):
        x, out = optimus.Input("x", (None, 2)), optimus.Output("out")
        a = optimus.Affine("a", x.shape, (None, 2))
        optimus.Graph("g", [x], [a], {"x": ["a.input"], "a.output": ["out"]}, [out],
                      device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("build", [seed000, seed002, seed004], ids=["000", "002", "004"])
def test_cuda_fast_path_matches_cpu_reference(build):
    # Noise draws differ between devices: compare seed 004 without it.
    options = {"noise": 0.0} if build is seed004 else {}
    cuda = build("fast", device="cuda", **options)
    ref = build("reference", **options)
    assert cuda.engine.name == "fast" and cuda.device.type == "cuda"
    values = seeded_params(ref)
    cuda.param_values, ref.param_values = values, values
    shape = tuple(cuda.inputs["x"].shape[1:])
    batches = classifier_batches(shape, 4, steps=3, lr=0.01)
    for a, b in zip(run_steps(cuda, batches), run_steps(ref, batches)):
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-3, atol=1e-4)
    for key, value in ref.param_values.items():
        np.testing.assert_allclose(cuda.param_values[key], value, rtol=1e-3, atol=1e-4)


def test_keep_freed_memory_is_idempotent():
    from optimus.fast.memory import keep_freed_memory
    first = keep_freed_memory()
    assert keep_freed_memory() == first
