"""The fast engine under ``torch.autocast``: convolution and dense kernels compute their products
in bfloat16 (`Kernel.autocasts`), everything else in float32. Checked by hand on a dense layer,
against the reference engine (PyTorch's own operators under autocast) on the seed ConvNets and
MLP, and for what autocast must leave alone: evaluation calls, float32 parameters and optimizer
state, and later float32 steps."""
from __future__ import annotations

from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

import optimus

from .common import build_pair, classifier_batches, run_steps, seed000, seed002, seed004

BF16 = torch.bfloat16


def bf16():
    return torch.autocast("cpu", dtype=BF16)


def steps_under_autocast(graph, batches, torch_seed=0):
    """One autocast context a step, as `Driver.fit` opens them: within one context, autocast
    reuses its bfloat16 copies of the weights, stale once a step has updated them."""
    torch.manual_seed(torch_seed)
    outputs = []
    for batch in batches:
        with bf16():
            outputs.append(graph(**batch))
    return outputs


def test_a_dense_step_multiplies_in_bfloat16_and_updates_in_float32():
    """One SGD step of ``x -> Affine -> softmax cross-entropy``, written out by hand: the
    products from bfloat16 operands, the activation, loss, bias gradient and update in
    float32."""
    x, y = optimus.Input("x", (None, 7)), optimus.Input("y", (None,), "int64")
    lr = optimus.Input("lr", None)
    dense = optimus.Affine("dense", x.shape, (None, 3), "linear")
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    edges = optimus.ConnectionManager([(x, dense.input), (dense.output, xent.logits),
                                       (y, xent.index), (xent.output, loss)]).connections
    graph = optimus.Graph("g", [x, y, lr], [dense, xent], edges, [loss], loss,
                          {"lr": ["dense.weights", "dense.bias"]}, engine="fast")
    rng = np.random.RandomState(0)
    graph.param_values = {"dense.weights": rng.randn(7, 3).astype(np.float32),
                          "dense.bias": rng.randn(3).astype(np.float32)}
    xs, ys = rng.randn(5, 7).astype(np.float32), rng.randint(0, 3, 5)
    w, b = (torch.tensor(v) for v in graph.param_values.values())
    with bf16():
        out = graph(x=xs, y=ys, lr=0.5)

    xb = torch.tensor(xs).to(BF16)
    z = torch.addmm(b.to(BF16), xb, w.to(BF16)).float()
    expected_loss = F.cross_entropy(z, torch.tensor(ys))
    dz = (torch.softmax(z, 1) - F.one_hot(torch.tensor(ys), 3)) / 5
    dw = torch.mm(xb.t(), dz.to(BF16)).float()
    np.testing.assert_allclose(out["loss"], expected_loss.numpy(), rtol=1e-6)
    after = graph.param_values
    np.testing.assert_allclose(after["dense.weights"], (w - 0.5 * dw).numpy(), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(after["dense.bias"], (b - 0.5 * dz.sum(0)).numpy(), rtol=1e-6,
                               atol=1e-7)
    # not what float32 products give: the bfloat16 ones did run
    assert not np.allclose(after["dense.weights"],
                           (w - 0.5 * torch.tensor(xs).t() @ dz).numpy(), rtol=1e-5, atol=0)


def _products_in_bf16(x, w, b=None):
    """A dense layer as the kernels compute it: bfloat16 operands, the bias added before the
    one rounding, a float32 result."""
    if b is None:
        return (x.to(BF16) @ w.to(BF16)).float()
    return torch.addmm(b.to(BF16), x.to(BF16), w.to(BF16)).float()


def _seed000_by_hand(p, x, y):
    """The seed-000 ConvNet in plain PyTorch, autograd through the casts."""
    z = F.conv2d(x.to(BF16), p["conv.weights"].to(BF16), p["conv.bias"].to(BF16)).float()
    h = F.max_pool2d(z, 2).relu().flatten(1)
    h = _products_in_bf16(h, p["hidden.weights"], p["hidden.bias"]).relu()
    logits = _products_in_bf16(h, p["out.weights"], p["out.bias"])
    return F.cross_entropy(logits, y)


def _seed002_by_hand(p, x, y):
    h = _products_in_bf16(x, p["hidden.weights"], p["hidden.bias"]).relu()
    logits = _products_in_bf16(h, p["out.weights"], p["out.bias"])
    decay = sum((p[k] ** 2).sum() for k in ("hidden.weights", "out.weights"))
    return F.cross_entropy(logits, y) + 0.005 * decay


def _assert_steps_by_hand(build, by_hand, batches, loss):
    """The fast engine's SGD steps under autocast are those of the network written in plain
    PyTorch with bfloat16 products (the biases' to the rounding of their gradients, which
    autograd sums in bfloat16 and the kernels in float32), and not the float32 steps."""
    graph, _ = build_pair(build)
    start = graph.param_values
    p = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    outputs = steps_under_autocast(graph, batches)
    for batch, out in zip(batches, outputs):
        value = by_hand(p, torch.tensor(batch["x"]), torch.tensor(batch["y"]).long())
        np.testing.assert_allclose(out[loss], value.item(), rtol=1e-5)
        value.backward()
        with torch.no_grad():
            for t in p.values():
                t -= batch["lr"] * t.grad
                t.grad = None
    fp32, _ = build_pair(build)
    run_steps(fp32, batches)
    for key, value in p.items():
        moved, expected = graph.param_values[key] - start[key], value.detach().numpy() - start[key]
        scale = np.abs(expected).max()
        bound = 0.005 if key.endswith("bias") else 0.001  # biases: bfloat16 sums by hand
        np.testing.assert_allclose(moved, expected, rtol=0, atol=bound * scale, err_msg=key)
    assert any(not np.allclose(graph.param_values[k], v, rtol=1e-6, atol=0)
               for k, v in fp32.param_values.items())  # bfloat16 products did run


def test_convnet_sgd_steps_are_those_of_plain_pytorch_with_bfloat16_products():
    _assert_steps_by_hand(seed000, _seed000_by_hand,
                          classifier_batches((1, 16, 16), 5, steps=3, lr=0.05), "loss")


def test_mlp_with_weight_decay_steps_are_those_of_plain_pytorch_with_bfloat16_products():
    _assert_steps_by_hand(seed002, _seed002_by_hand,
                          classifier_batches((30,), 4, steps=3, batch=40), "cost")


def test_adam_convnet_with_noise_keeps_float32_parameters_and_state():
    torch.manual_seed(0)
    graph, ref = build_pair(lambda engine: seed004(engine, noise=0.0))
    batches = classifier_batches((1, 12, 12), 5, steps=4, lr=3e-3)
    losses = [float(o["loss"]) for o in steps_under_autocast(graph, batches)]
    expected = [float(o["loss"]) for o in steps_under_autocast(ref, batches)]
    np.testing.assert_allclose(losses, expected, rtol=2e-2)
    assert all(v.dtype == np.float32 for v in graph.param_values.values())
    state = graph.optimizer.state_dict()["state"]
    assert state and all(t.dtype == torch.float32 for entry in state.values()
                         for t in entry.values() if isinstance(t, torch.Tensor) and t.dim())


def test_evaluation_under_autocast_is_the_float32_evaluation():
    graph, _ = build_pair(seed000)
    batch = classifier_batches((1, 16, 16), 5, steps=1, batch=9, lr=0.0)[0]
    plain = graph(**batch)
    with bf16():
        autocast = graph(**batch)
    for key, value in plain.items():
        assert autocast[key].dtype == value.dtype
        np.testing.assert_array_equal(autocast[key], value)


def test_float32_steps_after_autocast_steps_are_float32_steps():
    """The autocast plan is kept beside the float32 one, not in its place."""
    batches = classifier_batches((1, 16, 16), 5, steps=3)
    (a, _), (b, _) = build_pair(seed000), build_pair(seed000)
    steps_under_autocast(a, batches[:1])
    b.param_values = a.param_values
    out_a, out_b = run_steps(a, batches[1:]), run_steps(b, batches[1:])
    for x, y in zip(out_a, out_b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    for key, value in b.param_values.items():
        np.testing.assert_array_equal(a.param_values[key], value)


def test_a_layer_hands_bfloat16_only_to_a_casting_reader_and_results_stay_float32():
    """x -> Affine relu -> Affine -> softmax cross-entropy: the hidden layer hands its output
    on in bfloat16 (its reader casts anyway) unless that output is also a result of the call;
    the output layer never (its reader, the loss, computes in float32)."""
    def build(tap):
        x, y = optimus.Input("x", (None, 6)), optimus.Input("y", (None,), "int64")
        lr = optimus.Input("lr", None)
        hidden = optimus.Affine("hidden", x.shape, (None, 5), "relu")
        out = optimus.Affine("out", hidden.output.shape, (None, 3), "linear")
        xent, loss, h = (optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss"),
                         optimus.Output("h"))
        edges = [(x, hidden.input), (hidden.output, out.input), (out.output, xent.logits),
                 (y, xent.index), (xent.output, loss)] + ([(hidden.output, h)] if tap else [])
        return optimus.Graph("g", [x, y, lr], [hidden, out, xent],
                             optimus.ConnectionManager(edges).connections,
                             [loss, h] if tap else [loss], loss,
                             {"lr": ["hidden.weights", "hidden.bias", "out.weights",
                                     "out.bias"]}, engine="fast")

    rng = np.random.RandomState(3)
    batch = {"x": rng.randn(8, 6).astype(np.float32), "y": rng.randint(0, 3, 8), "lr": 0.1}
    for tap in (False, True):
        graph = build(tap)
        with bf16():
            out = graph(**batch)
        kernels = [k for k, _ in next(iter(graph.engine._plans.values())).forward]
        assert [k.hands_low for k in kernels[:2]] == [not tap, False]
        assert all(value.dtype == np.float32 for value in out.values())


def _norm_chain(engine: str, dropout: bool, step_rule) -> optimus.Graph:
    """Conv relu -> BatchNorm -> MaxPool [-> Dropout] -> Affine -> softmax cross-entropy."""
    x, y = optimus.Input("x", (None, 2, 8, 8)), optimus.Input("y", (None,), "int64")
    conv = optimus.Conv2D("conv", x.shape, num_filters=4, kernel_size=3, padding=1,
                          act_type="relu")
    norm = optimus.BatchNorm("norm", conv.output.shape)
    chain = [conv, norm, optimus.MaxPool("pool", norm.output.shape, pool_shape=2)]
    if dropout:
        chain.append(optimus.Dropout("drop", 0.25, input_shape=chain[-1].output.shape))
    chain.append(optimus.Affine("dense", chain[-1].output.shape, (None, 3), "linear"))
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    edges = [(x, conv.input)] + [(a.output, b.input) for a, b in zip(chain, chain[1:])]
    edges += [(chain[-1].output, xent.logits), (y, xent.index), (xent.output, loss)]
    trained = ["conv.weights", "conv.bias", "norm.gamma", "norm.beta", "dense.weights",
               "dense.bias"]
    return optimus.Graph("g", [x, y, optimus.Input("lr", None)], chain + [xent],
                         optimus.ConnectionManager(edges).connections, [loss], loss,
                         {"lr": trained}, step_rule=step_rule, engine=engine)


def test_batch_norm_and_dropout_between_autocasting_kernels_stay_float32():
    """Conv -> BatchNorm -> MaxPool -> Dropout -> Affine: Dropout keeps no low precision, so
    the kernels between the products get float32 values, and the BatchNorm running
    statistics stay float32."""
    graph, plain = (_norm_chain("fast", True, optimus.optim.Adam()) for _ in range(2))
    plain.param_values = graph.param_values
    batches = classifier_batches((2, 8, 8), 3, steps=3, batch=10, lr=1e-2)
    losses = [float(o["loss"]) for o in steps_under_autocast(graph, batches)]
    expected = [float(o["loss"]) for o in run_steps(plain, batches)]
    np.testing.assert_allclose(losses, expected, rtol=2e-2)
    assert losses != expected  # the products did run in bfloat16
    assert graph.engines["norm"] == "fast" and graph.engines["drop"] == "fast"
    assert all(v.dtype == np.float32 for v in graph.param_values.values())
    assert graph.params["norm.running_mean"].tensor.dtype == torch.float32


def test_batch_norm_and_pooling_between_two_products_keep_bfloat16_maps():
    """Conv -> BatchNorm -> MaxPool -> Affine: as under autocast in eager PyTorch, the maps
    between the two products stay bfloat16 (the convolution hands its output on low), the
    running statistics and parameters float32; the steps are the reference engine's under
    the same autocast to bfloat16 rounding."""
    graph, reference = (_norm_chain(engine, False, optimus.optim.SGD())
                        for engine in ("fast", "reference"))
    reference.param_values = graph.param_values
    batches = classifier_batches((2, 8, 8), 3, steps=3, batch=10, lr=0.05)
    losses = [float(o["loss"]) for o in steps_under_autocast(graph, batches)]
    expected = [float(o["loss"]) for o in steps_under_autocast(reference, batches)]
    np.testing.assert_allclose(losses, expected, rtol=1e-2)
    for key, value in reference.param_values.items():
        assert graph.param_values[key].dtype == np.float32
        np.testing.assert_allclose(graph.param_values[key], value, rtol=0.02, atol=2e-3,
                                   err_msg=key)
    assert graph.params["norm.running_mean"].tensor.dtype == torch.float32
    kernels = [k for k, _ in next(iter(graph.engine._plans.values())).forward]
    assert kernels[0].hands_low  # the convolution's output goes on in bfloat16
    seen = {}
    norm_forward = type(kernels[1]).forward

    def spy(self, v, training):
        seen["norm input"] = v[self.x].dtype
        norm_forward(self, v, training)
        seen["norm output"] = v[self.y].dtype

    with mock.patch.object(type(kernels[1]), "forward", spy), bf16():
        graph(**batches[0])
    assert seen == {"norm input": torch.bfloat16, "norm output": torch.bfloat16}
