"""The four seed training workloads, each written four ways from the same initial weights:
an optimus graph (the user's path, ``graph(**numpy_batch)``), a hand-written eager PyTorch
loop, that loop under ``torch.compile``, and (for the MLPs) NumPy forward/backward by hand.

Every runner is a function ``step(batch) -> loss`` taking the same NumPy batch dict
(``data``, ``labels``) and doing one SGD/Adam step; each returns the loss as a Python float,
so all do the same work, conversions included.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import optimus
from optimus.datasets import mnist, sentiment

Step = Callable[[dict], float]


@dataclass
class Workload:
    """One seed workload: its data, initial weights and builders of each runner."""

    name: str
    title: str
    batch: int
    rule: str  # 'sgd' or 'adam'
    lr: float
    batches: list[dict]
    params: dict[str, np.ndarray]  # optimus names and layouts
    optimus: Callable[[dict], optimus.Graph]
    torch_model: Callable[[dict], nn.Module]
    torch_loss: Callable[..., torch.Tensor]  # (forward, module, x, y) -> loss
    numpy: Callable[[dict], Step] | None = None
    noise: float = 0.0


# -- runners shared by all workloads --------------------------------------------------------------
def optimus_runner(w: Workload, engine: str = "auto") -> tuple[Step, optimus.Graph]:
    graph = w.optimus(w.params, engine)
    lr = w.lr

    def step(batch: dict) -> float:
        return float(graph(data=batch["data"], labels=batch["labels"], learning_rate=lr)["loss"])

    return step, graph


def torch_runner(w: Workload, compiled: str | None = None) -> Step:
    """The hand-written loop: zero_grad, loss, backward, step, loss.item().

    ``compiled``: None (eager), 'model' (``torch.compile`` of the model) or 'step'
    (``torch.compile`` of the whole step: forward, backward and optimizer update). The input
    noise is drawn outside the compiled code, so all runners draw the same numbers.
    """
    model = w.torch_model(w.params)
    forward = torch.compile(model) if compiled == "model" else model
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=w.lr) if w.rule == "sgd"
           else torch.optim.Adam(params, lr=w.lr))
    loss_fn, noise = w.torch_loss, w.noise

    def train(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward, model, x, y)
        loss.backward()
        opt.step()
        return loss

    train_step = torch.compile(train) if compiled == "step" else train

    def step(batch: dict) -> float:
        x = torch.from_numpy(batch["data"])
        y = torch.from_numpy(batch["labels"])
        if noise:
            x = x + noise * torch.randn_like(x)
        return train_step(x, y).item()

    return step


def _cross_entropy(forward, module, x, y):
    return F.cross_entropy(forward(x), y)


def _linear(w: np.ndarray, b: np.ndarray) -> nn.Linear:
    """An nn.Linear holding optimus Affine weights ``(in, out)``."""
    layer = nn.Linear(*w.shape)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w.T.copy()))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def _conv(w: np.ndarray, b: np.ndarray, padding: int = 0) -> nn.Conv2d:
    layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], padding=padding)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def _mnist_batches(batch: int, count: int, seed: int, flat: bool = False) -> list[dict]:
    (x, y), _, _ = mnist.load()
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(count):
        idx = rng.randint(0, len(y), batch)
        data = x[idx].reshape(batch, -1) if flat else x[idx]
        out.append({"data": np.ascontiguousarray(data, dtype=np.float32),
                    "labels": y[idx].astype(np.int64)})
    return out


def _affine_graph_params(rng, shapes: dict[str, tuple], std: float) -> dict[str, np.ndarray]:
    return {name: (rng.normal(0.0, std, shape) if name.endswith("weights")
                   else np.zeros(shape)).astype(np.float32) for name, shape in shapes.items()}


# -- seed 000: the notebook's ConvNet -------------------------------------------------------------
def seed000(count: int = 64) -> Workload:
    rng = np.random.RandomState(0)
    params = _affine_graph_params(rng, {
        "conv.weights": (15, 1, 9, 9), "conv.bias": (15,),
        "affine.weights": (1500, 512), "affine.bias": (512,),
        "classifier.weights": (512, 10), "classifier.bias": (10,)}, std=0.1)

    def graph(p, engine="auto"):
        data = optimus.Input(name="data", shape=(None, 1, 28, 28))
        labels = optimus.Input(name="labels", shape=(None,), dtype="int32")
        lr = optimus.Input(name="learning_rate", shape=None)
        conv = optimus.Conv3D(name="conv", input_shape=data.shape, weight_shape=(15, 1, 9, 9),
                              pool_shape=(2, 2), act_type="relu")
        affine = optimus.Affine(name="affine", input_shape=conv.output.shape,
                                output_shape=(None, 512), act_type="relu")
        classifier = optimus.Affine(name="classifier", input_shape=affine.output.shape,
                                    output_shape=(None, 10), act_type="linear")
        softmax = optimus.Softmax(name="softmax")
        nll = optimus.NegativeLogLikelihoodLoss(name="nll")
        loss = optimus.Output(name="loss")
        edges = optimus.ConnectionManager([
            (data, conv.input), (conv.output, affine.input), (affine.output, classifier.input),
            (classifier.output, softmax.input), (softmax.output, nll.likelihoods),
            (labels, nll.index), (nll.output, loss)])
        updates = optimus.ConnectionManager([(lr, n.weights) for n in (conv, affine, classifier)]
                                            + [(lr, n.bias) for n in (conv, affine, classifier)])
        g = optimus.Graph(name="mnist_trainer", inputs=[data, labels, lr],
                          nodes=[conv, affine, classifier, softmax, nll],
                          connections=edges.connections, outputs=[loss], loss=loss,
                          updates=updates.connections, engine=engine)
        g.param_values = p
        return g

    def model(p):
        class ConvNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = _conv(p["conv.weights"], p["conv.bias"])
                self.fc1 = _linear(p["affine.weights"], p["affine.bias"])
                self.fc2 = _linear(p["classifier.weights"], p["classifier.bias"])

            def forward(self, x):
                x = F.relu(F.max_pool2d(self.conv(x), 2))
                return self.fc2(F.relu(self.fc1(x.flatten(1))))
        return ConvNet()

    return Workload("seed-000", "ConvNet, batch 25, SGD", 25, "sgd", 0.02,
                    _mnist_batches(25, count, 1), params, graph, model, _cross_entropy)


# -- seed 001: the LXMLS sentiment MLP ------------------------------------------------------------
def seed001(count: int = 320) -> Workload:
    (x, y), _ = sentiment.load("books")
    rng = np.random.RandomState(1234)
    params = {}
    for name, (n_in, n_out) in (("hidden", (13989, 20)), ("output", (20, 2))):
        bound = 4 * np.sqrt(6.0 / (n_in + n_out))
        params[f"{name}.weights"] = rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)
        params[f"{name}.bias"] = np.zeros(n_out, np.float32)
    batches = [{"data": x[i:i + 5], "labels": y[i:i + 5]}  # in order, read-only views
               for i in range(0, min(len(y), 5 * count), 5)]

    def graph(p, engine="auto"):
        data = optimus.Input("data", (None, 13989))
        labels = optimus.Input("labels", (None,), "int64")
        lr = optimus.Input("learning_rate", None)
        hidden = optimus.Affine("hidden", data.shape, (None, 20), act_type="sigmoid")
        output = optimus.Affine("output", hidden.output.shape, (None, 2), act_type="linear")
        softmax = optimus.Softmax("softmax")
        nll = optimus.NegativeLogLikelihoodLoss("nll")
        loss = optimus.Output("loss")
        edges = optimus.ConnectionManager([
            (data, hidden.input), (hidden.output, output.input), (output.output, softmax.input),
            (softmax.output, nll.likelihoods), (labels, nll.index), (nll.output, loss)])
        updates = optimus.ConnectionManager(
            [(lr, q) for node in (hidden, output) for q in (node.weights, node.bias)])
        g = optimus.Graph("sentiment_mlp", [data, labels, lr], [hidden, output, softmax, nll],
                          edges.connections, [loss], loss, updates.connections, engine=engine)
        g.param_values = p
        return g

    def model(p):
        return nn.Sequential(_linear(p["hidden.weights"], p["hidden.bias"]), nn.Sigmoid(),
                             _linear(p["output.weights"], p["output.bias"]))

    def numpy_step(p):
        w1, b1 = p["hidden.weights"].copy(), p["hidden.bias"].copy()
        w2, b2 = p["output.weights"].copy(), p["output.bias"].copy()
        lr = np.float32(0.01)

        def step(batch):
            x, y = batch["data"], batch["labels"]
            n = len(y)
            h = 1.0 / (1.0 + np.exp(-(x @ w1 + b1)))
            z = h @ w2 + b2
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            p_ = e / e.sum(axis=1, keepdims=True)
            rows = np.arange(n)
            loss = -np.log(p_[rows, y]).mean()
            d2 = p_
            d2[rows, y] -= 1.0
            d2 /= n
            d1 = (d2 @ w2.T) * h * (1.0 - h)
            w2[...] -= lr * (h.T @ d2)
            b2[...] -= lr * d2.sum(axis=0)
            w1[...] -= lr * (x.T @ d1)
            b1[...] -= lr * d1.sum(axis=0)
            return float(loss)
        return step

    return Workload("seed-001", "MLP 13989-20-2, batch 5, SGD", 5, "sgd", 0.01, batches,
                    params, graph, model, _cross_entropy, numpy_step)


# -- seed 002: the Blocks MLP with L2 -------------------------------------------------------------
L2 = 0.005


def seed002(count: int = 48) -> Workload:
    rng = np.random.RandomState(2)
    params = _affine_graph_params(rng, {
        "input_to_hidden.weights": (784, 100), "input_to_hidden.bias": (100,),
        "hidden_to_output.weights": (100, 10), "hidden_to_output.bias": (10,)}, std=0.01)

    def graph(p, engine="auto"):
        features = optimus.Input(name="data", shape=(None, 784))
        targets = optimus.Input(name="labels", shape=(None,), dtype="int64")
        learning_rate = optimus.Input(name="learning_rate", shape=None)
        i2h = optimus.Affine(name="input_to_hidden", input_shape=features.shape,
                             output_shape=(None, 100), act_type="relu")
        h2o = optimus.Affine(name="hidden_to_output", input_shape=i2h.output.shape,
                             output_shape=(None, 10), act_type="linear")
        xent = optimus.SoftmaxCrossEntropyLoss(name="cross_entropy")
        decay_1 = optimus.WeightDecayPenalty(name="decay_1", weight=L2)
        decay_2 = optimus.WeightDecayPenalty(name="decay_2", weight=L2)
        total = optimus.Add(name="regularized", num_inputs=3)
        loss = optimus.Output(name="loss")
        edges = optimus.ConnectionManager([
            (features, i2h.input), (i2h.output, h2o.input), (h2o.output, xent.logits),
            (targets, xent.index), (i2h.weights, decay_1.input), (h2o.weights, decay_2.input),
            (xent.output, total.input_0), (decay_1.output, total.input_1),
            (decay_2.output, total.input_2), (total.output, loss)])
        updates = optimus.ConnectionManager(
            [(learning_rate, q) for node in (i2h, h2o) for q in (node.weights, node.bias)])
        g = optimus.Graph(name="blocks_mlp", inputs=[features, targets, learning_rate],
                          nodes=[i2h, h2o, xent, decay_1, decay_2, total],
                          connections=edges.connections, outputs=[loss], loss=loss,
                          updates=updates.connections, engine=engine)
        g.param_values = p
        return g

    def model(p):
        return nn.Sequential(_linear(p["input_to_hidden.weights"], p["input_to_hidden.bias"]),
                             nn.ReLU(),
                             _linear(p["hidden_to_output.weights"], p["hidden_to_output.bias"]))

    def loss(forward, module, x, y):
        return (F.cross_entropy(forward(x), y)
                + L2 * (module[0].weight.pow(2).sum() + module[2].weight.pow(2).sum()))

    def numpy_step(p):
        w1, b1 = p["input_to_hidden.weights"].copy(), p["input_to_hidden.bias"].copy()
        w2, b2 = p["hidden_to_output.weights"].copy(), p["hidden_to_output.bias"].copy()
        lr = np.float32(0.1)

        def step(batch):
            x, y = batch["data"], batch["labels"]
            n = len(y)
            h = np.maximum(x @ w1 + b1, 0.0)
            z = h @ w2 + b2
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            p_ = e / e.sum(axis=1, keepdims=True)
            rows = np.arange(n)
            loss = -np.log(p_[rows, y]).mean() + L2 * ((w1 * w1).sum() + (w2 * w2).sum())
            d2 = p_
            d2[rows, y] -= 1.0
            d2 /= n
            d1 = (d2 @ w2.T) * (h > 0)
            g2 = h.T @ d2 + (2 * L2) * w2
            g1 = x.T @ d1 + (2 * L2) * w1
            w2[...] -= lr * g2
            b2[...] -= lr * d2.sum(axis=0)
            w1[...] -= lr * g1
            b1[...] -= lr * d1.sum(axis=0)
            return float(loss)
        return step

    return Workload("seed-002", "MLP 784-100-10, batch 256, SGD + L2", 256, "sgd", 0.1,
                    _mnist_batches(256, count, 2, flat=True), params, graph, model, loss,
                    numpy_step)


# -- seed 004: the Flux ConvNet ------------------------------------------------------------------
def seed004(count: int = 32) -> Workload:
    rng = np.random.RandomState(4)
    shapes = {}
    maps_in = 1
    for i, maps in enumerate((16, 32, 32)):
        shapes[f"conv{i}.weights"], shapes[f"conv{i}.bias"] = (maps, maps_in, 3, 3), (maps,)
        maps_in = maps
    shapes["dense.weights"], shapes["dense.bias"] = (288, 10), (10,)
    params = {}
    for name, shape in shapes.items():  # Glorot uniform weights, as Flux
        if name.endswith("weights"):
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            fan_out = shape[0] * int(np.prod(shape[2:])) if len(shape) == 4 else shape[1]
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            params[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        else:
            params[name] = np.zeros(shape, np.float32)

    def graph(p, engine="auto"):
        data = optimus.Input("data", (None, 1, 28, 28))
        labels = optimus.Input("labels", (None,), "int64")
        lr = optimus.Input("learning_rate", None)
        noise = optimus.GaussianNoise("noise", std=0.1)
        nodes, pairs = [noise], [(data, noise.input)]
        shape, source = data.shape, noise.output
        for i, maps in enumerate((16, 32, 32)):
            conv = optimus.Conv2D(f"conv{i}", shape, num_filters=maps, kernel_size=3, padding=1,
                                  act_type="relu")
            pool = optimus.MaxPool(f"pool{i}", conv.output.shape, pool_shape=2)
            nodes += [conv, pool]
            pairs += [(source, conv.input), (conv.output, pool.input)]
            shape, source = pool.output.shape, pool.output
        dense = optimus.Affine("dense", shape, (None, 10), act_type="linear")
        xent = optimus.SoftmaxCrossEntropyLoss("xent")
        loss = optimus.Output("loss")
        pairs += [(source, dense.input), (dense.output, xent.logits), (labels, xent.index),
                  (xent.output, loss)]
        nodes += [dense, xent]
        updates = optimus.ConnectionManager(
            [(lr, q) for n in nodes for q in n.params.values()])
        g = optimus.Graph("flux_conv", [data, labels, lr], nodes,
                          optimus.ConnectionManager(pairs).connections, [loss], loss,
                          updates.connections, step_rule=optimus.optim.Adam(), engine=engine)
        g.param_values = p
        return g

    def model(p):
        layers = []
        for i in range(3):
            layers += [_conv(p[f"conv{i}.weights"], p[f"conv{i}.bias"], padding=1), nn.ReLU(),
                       nn.MaxPool2d(2)]
        return nn.Sequential(*layers, nn.Flatten(),
                             _linear(p["dense.weights"], p["dense.bias"]))

    return Workload("seed-004", "ConvNet, batch 128, Adam, noise", 128, "adam", 3e-3,
                    _mnist_batches(128, count, 4), params, graph, model, _cross_entropy,
                    noise=0.1)


WORKLOADS = {"seed-000": seed000, "seed-001": seed001, "seed-002": seed002, "seed-004": seed004}
