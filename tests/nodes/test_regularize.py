"""Training-only behaviour: Dropout and GaussianNoise act, and BatchNorm uses and updates batch
statistics, exactly in calls that take an update step; shared nodes follow each graph's call."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import optimus


def forward(node, x, training, params=None):
    params = params or {k: p.tensor for k, p in node.params.items()}
    return node.forward({"input": x}, params, training)


def test_dropout_acts_only_while_training():
    node = optimus.Dropout("drop", rate=0.25)
    x = torch.rand(200, 50) + 1.0
    assert torch.equal(forward(node, x, False), x)
    torch.manual_seed(0)
    out = forward(node, x, True)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - 0.25) < 0.02
    torch.testing.assert_close(out[~dropped], x[~dropped] / 0.75)


def test_gaussian_noise_acts_only_while_training():
    node = optimus.GaussianNoise("noise", std=0.3)
    x = torch.randn(400, 50)
    assert torch.equal(forward(node, x, False), x)
    torch.manual_seed(0)
    noise = forward(node, x, True) - x
    assert abs(noise.mean().item()) < 0.01
    assert abs(noise.std().item() - 0.3) < 0.01
    assert torch.equal(forward(optimus.GaussianNoise("n0", std=0.0), x, True), x)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 2, 2)])
def test_batch_norm_matches_torch_module_in_both_modes(shape):
    node = optimus.BatchNorm("bn", input_shape=(None, *shape[1:]), momentum=0.2, epsilon=1e-3)
    assert node.params["running_mean"].trainable is False
    assert node.params["running_var"].trainable is False
    np.testing.assert_array_equal(node.gamma.value, np.ones(3))
    np.testing.assert_array_equal(node.running_var.value, np.ones(3))
    module = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        3, eps=1e-3, momentum=0.2)
    rng = np.random.RandomState(0)
    for name, attr in [("gamma", "weight"), ("beta", "bias")]:
        value = rng.normal(size=3)
        getattr(node, name).value = value
        with torch.no_grad():
            getattr(module, attr).copy_(torch.tensor(value))
    for step in range(3):
        x = torch.randn(*shape) * 2 + step
        module.train()
        torch.testing.assert_close(forward(node, x, True), module(x))
        torch.testing.assert_close(node.running_mean.tensor, module.running_mean)
        torch.testing.assert_close(node.running_var.tensor, module.running_var)
        module.eval()
        torch.testing.assert_close(forward(node, x, False), module(x))


def build(rate=0.5, std=0.5):
    """A trainer (loss, updates) and a predictor built from the same node objects."""
    data = optimus.Input("data", (None, 6))
    target = optimus.Input("target", (None, 2))
    lr = optimus.Input("learning_rate", None)
    bn = optimus.BatchNorm("bn", input_shape=data.shape)
    drop = optimus.Dropout("drop", rate=rate)
    noise = optimus.GaussianNoise("noise", std=std)
    affine = optimus.Affine("affine", (None, 6), (None, 2), "linear")
    mse = optimus.MeanSquaredError("mse")
    loss, pred = optimus.Output("loss"), optimus.Output("pred")
    dropped, noised = optimus.Output("dropped"), optimus.Output("noised")
    edges = optimus.ConnectionManager([
        (data, bn.input), (bn.output, drop.input), (drop.output, affine.input),
        (affine.output, mse.prediction), (target, mse.target), (mse.output, loss),
        (affine.output, pred), (drop.output, dropped), (data, noise.input),
        (noise.output, noised)])
    updates = optimus.ConnectionManager([(lr, p) for p in (affine.weights, affine.bias,
                                                           bn.gamma, bn.beta)])
    nodes = [bn, drop, noise, affine, mse]
    trainer = optimus.Graph("trainer", [data, target, lr], nodes, edges.connections,
                            [loss, pred, dropped, noised], loss, updates.connections)
    predict_edges = optimus.ConnectionManager([
        (data, bn.input), (bn.output, drop.input), (drop.output, affine.input),
        (affine.output, pred)])
    predictor = optimus.Graph("predictor", [data], [bn, drop, affine],
                              predict_edges.connections, [pred])
    optimus.random_init(affine.weights, 0.0, 0.5, seed=1)
    return trainer, predictor, bn


def expected_prediction(bn, affine, x):
    mean, var = bn.running_mean.value, bn.running_var.value
    h = (x - mean) / np.sqrt(var + 1e-5) * bn.gamma.value + bn.beta.value
    return h @ affine.weights.value + affine.bias.value


def test_trainer_and_predictor_share_nodes_but_not_modes(tmp_path):
    trainer, predictor, bn = build()
    affine = predictor.nodes["affine"]
    rng = np.random.RandomState(0)
    x = (rng.normal(size=(32, 6)) * 3 + 1).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)

    # Evaluating (learning rate 0) is not training: no dropout, no noise, no statistics update.
    out = trainer(data=x, target=y, learning_rate=0.0)
    np.testing.assert_array_equal(out["noised"], x)
    np.testing.assert_allclose(out["dropped"], x / np.sqrt(1 + 1e-5), rtol=1e-6)
    np.testing.assert_array_equal(bn.running_mean.value, np.zeros(6))
    first = predictor(data=x)["pred"]
    np.testing.assert_array_equal(first, predictor(data=x)["pred"])
    np.testing.assert_allclose(first, expected_prediction(bn, affine, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["pred"], first, rtol=1e-6)

    # A training step: dropout and noise act, batch statistics are used and tracked.
    torch.manual_seed(0)
    out = trainer(data=x, target=y, learning_rate=0.1)
    zeros = np.mean(out["dropped"] == 0)
    assert 0.35 < zeros < 0.65
    assert np.all(out["noised"] != x)
    np.testing.assert_allclose(bn.running_mean.value, 0.1 * x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.value, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    assert not np.allclose(bn.gamma.value, 1.0)  # gamma is trained

    # The predictor sees the updated statistics and weights, in inference mode.
    np.testing.assert_allclose(predictor(data=x)["pred"], expected_prediction(bn, affine, x),
                               rtol=1e-4, atol=1e-5)

    # Running statistics are parameters: saved in the npz and restored on load.
    optimus.save(predictor, tmp_path / "def.json", tmp_path / "params.npz")
    with np.load(tmp_path / "params.npz") as saved:
        np.testing.assert_array_equal(saved["bn.running_var"], bn.running_var.value)
    loaded = optimus.load(tmp_path / "def.json", tmp_path / "params.npz")
    np.testing.assert_array_equal(loaded(data=x)["pred"], predictor(data=x)["pred"])


def test_running_statistics_cannot_be_updated_by_a_learning_rate():
    data, lr = optimus.Input("data", (None, 3)), optimus.Input("lr", None)
    bn, total = optimus.BatchNorm("bn", (None, 3)), optimus.Sum("total")
    loss = optimus.Output("loss")
    edges = optimus.ConnectionManager([(data, bn.input), (bn.output, total.input),
                                       (total.output, loss)])
    with pytest.raises(optimus.GraphError, match="bn.running_mean' is not trainable"):
        optimus.Graph("g", [data, lr], [bn, total], edges.connections, [loss], loss,
                      {"lr": ["bn.running_mean"]})


# -- the fast kernels of Dropout and BatchNorm ---------------------------------------------------
def _seeded_steps(engine, steps=3, plain_sgd=False):
    """Three training steps of conv -> BatchNorm -> max-pool -> Dropout -> Affine on one
    engine, from the same weights and torch seed; returns the outputs and parameters."""
    x, y = optimus.Input("x", (None, 2, 6, 6)), optimus.Input("y", (None,), "int64")
    lr = optimus.Input("lr", None)
    conv = optimus.Conv2D("conv", x.shape, num_filters=3, kernel_size=3, padding=1)
    bn = optimus.BatchNorm("bn", conv.output.shape, momentum=0.3)
    pool = optimus.MaxPool("pool", bn.output.shape, pool_shape=2)
    drop = optimus.Dropout("drop", rate=0.25, input_shape=pool.output.shape)
    dense = optimus.Affine("dense", drop.output.shape, (None, 4), "linear")
    xent = optimus.SoftmaxCrossEntropyLoss("xent")
    loss, dropped = optimus.Output("loss"), optimus.Output("dropped")
    edges = optimus.ConnectionManager([
        (x, conv.input), (conv.output, bn.input), (bn.output, pool.input),
        (pool.output, drop.input), (drop.output, dense.input), (dense.output, xent.logits),
        (y, xent.index), (xent.output, loss), (drop.output, dropped)])
    updates = optimus.ConnectionManager([(lr, p) for n in (conv, bn, dense)
                                         for p in n.params.values() if p.trainable])
    rule = optimus.optim.SGD() if plain_sgd else optimus.optim.Adam()
    graph = optimus.Graph("g", [x, y, lr], [conv, bn, pool, drop, dense, xent],
                          edges.connections, [loss, dropped], loss, updates.connections,
                          step_rule=rule, engine=engine)
    rng = np.random.RandomState(0)
    graph.param_values = {k: rng.normal(0, 0.4, p.shape).astype(np.float32)
                          for k, p in graph.params.items() if p.trainable}
    torch.manual_seed(5)
    outs = [graph(x=rng.rand(8, 2, 6, 6).astype(np.float32), y=rng.randint(0, 4, 8), lr=0.05)
            for _ in range(steps)]
    return graph, outs


@pytest.mark.parametrize("channels_last", [False, True], ids=["default-order", "nhwc"])
@pytest.mark.parametrize("plain_sgd", [False, True], ids=["adam", "sgd-fused"])
def test_dropout_and_batch_norm_kernels_train_like_the_reference(plain_sgd, channels_last,
                                                                 monkeypatch):
    from optimus.fast.regularize import BatchNorm
    monkeypatch.setattr(BatchNorm, "CHANNELS_LAST", channels_last)
    fast, fast_outs = _seeded_steps("fast", plain_sgd=plain_sgd)
    ref, ref_outs = _seeded_steps("reference", plain_sgd=plain_sgd)
    assert fast.engines["drop"] == "fast" and fast.engines["bn"] == "fast"
    for a, b in zip(fast_outs, ref_outs):
        np.testing.assert_array_equal(a["dropped"] == 0, b["dropped"] == 0)  # the same mask
        np.testing.assert_allclose(a["dropped"], b["dropped"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    for key, value in ref.param_values.items():  # running statistics included
        np.testing.assert_allclose(fast.param_values[key], value, rtol=2e-4, atol=2e-5,
                                   err_msg=key)


def test_batch_norm_kernel_backward_after_an_eval_forward():
    """A kernel differentiated after a forward without training uses the running statistics
    as constants, as autograd does through ``F.batch_norm(training=False)``."""
    from optimus.fast.kernel import Binding
    from optimus.fast.regularize import BatchNorm

    node = optimus.BatchNorm("bn", (None, 3, 2, 2))
    gen = torch.Generator().manual_seed(0)
    x, dy = (torch.randn(4, 3, 2, 2, dtype=torch.float64, generator=gen) for _ in range(2))
    gamma, beta, mean = (torch.randn(3, dtype=torch.float64, generator=gen) for _ in range(3))
    var = torch.rand(3, dtype=torch.float64, generator=gen) + 0.5
    size = [6]

    def private():
        size[0] += 1
        return size[0] - 1

    ports = ("input", "gamma", "beta", "running_mean", "running_var")
    kernel = BatchNorm(Binding(node, {p: i for i, p in enumerate(ports)}, {"output": 5}, {},
                               frozenset({"input", "gamma", "beta"}), saves=True,
                               private=private))
    v = [x, gamma, beta, mean, var, None, None, None]  # output, then two private slots
    kernel.forward(v, False)
    y = v[5]  # the backward releases the output slot, which it does not read
    g = [None] * len(v)
    g[5] = dy
    kernel.backward(v, g, [])
    leaves = [t.clone().requires_grad_() for t in (x, gamma, beta)]
    out = torch.nn.functional.batch_norm(leaves[0], mean, var, leaves[1], leaves[2], False, 0.1,
                                         node.spec.epsilon)
    torch.testing.assert_close(y, out.detach())
    for slot, expected in zip(range(3), torch.autograd.grad(out, leaves, dy)):
        torch.testing.assert_close(g[slot], expected)
