"""The seed training workloads, each run several ways from the same initial weights: the
example's own optimus graph (``examples/``, the user's path, ``graph(**numpy_batch)``), a
hand-written eager PyTorch loop (also channels-last for the ConvNets), that loop under
``torch.compile``, the whole step in one ``jax.jit`` (``jax_steps.py``), and for the MLPs NumPy
forward/backward by hand, in place (``numpy_steps.py``). Two variants of the seed-004
ConvNet add Dropout(0.25) before its dense layer and BatchNorm after each conv (nodes whose
training calls differ from inference); ``bag-of-words`` runs seed 001's model on a 100,000-word
vocabulary (sparse input rows).

Every runner is a function ``step(batch) -> loss`` taking the same NumPy batch dict
(``data``, ``labels``) and doing one SGD/Adam step; each returns the loss as a Python float,
so all do the same work, conversions included.
"""
from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import jax_steps
import numpy_steps
import optimus
from optimus.datasets import mnist, sentiment
from optimus.examples import seed000_mnist_convnet as example000
from optimus.examples import seed001_sentiment_mlp as example001
from optimus.examples import seed002_blocks_mlp as example002
from optimus.examples import seed004_flux_conv as example004

Step = Callable[[dict], float]


@dataclass
class Workload:
    """One seed workload: its data, initial weights and builders of each runner.

    ``optimus(params, engine)`` builds the example's trainer and sets its parameters; ``feed``
    names its data and label inputs and ``loss`` its loss output (the examples' own names).
    """

    name: str
    title: str
    batch: int
    rule: str  # 'sgd' or 'adam'
    lr: float
    batches: list[dict]
    params: dict[str, np.ndarray]  # optimus names and layouts
    optimus: Callable[..., optimus.Graph]
    torch_model: Callable[[dict], nn.Module]
    torch_loss: Callable[..., torch.Tensor]  # (forward, module, x, y) -> loss
    numpy: Callable[[dict], Step] | None = None  # benchmarks/numpy_steps.py
    noise: float = 0.0
    feed: tuple[str, str] = ("data", "labels")
    loss: str = "loss"
    # the model draws random numbers inside its ops (Dropout): torch.compile and channels-last
    # draw them in another order, so their losses cannot be checked and they are left out
    draws_in_model: bool = False
    # images (4-D batches): the eager loop is also run channels-last
    maps: bool = False
    # the runner whose numbers optimus' are checked against: "eager", or "eager_cl" where
    # optimus computes as PyTorch's channels-last path does and the two memory orders' float32
    # results drift apart (batch statistics, see optimus.fast.regularize.BatchNorm)
    optimus_matches: str = "eager"
    # the whole step in one jax.jit (benchmarks/jax_steps.py); None: not written for this one
    jax: Callable[[dict], Step] | None = None
    # 'bf16': every runner's step under bfloat16 torch.autocast (`Driver.fit(precision=...)`)
    precision: str | None = None


def _autocast(w: Workload, step: Step, device: str = "cpu") -> Step:
    """``step`` under the workload's precision: one autocast context a step, as `Driver.fit`
    opens them."""
    if w.precision != "bf16":
        return step
    device_type = torch.device(device).type

    def bf16_step(batch: dict) -> float:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return step(batch)

    return bf16_step


# -- runners shared by all workloads --------------------------------------------------------------
def optimus_runner(w: Workload, engine: str = "auto", device: str = "cpu"
                   ) -> tuple[Step, optimus.Graph]:
    """The example's trainer called as a user calls it; ``device`` other than 'cpu' only for
    workloads whose builder takes one (the seed-004 family, `benchmarks/gpu.py`)."""
    graph = w.optimus(w.params, engine, **({} if device == "cpu" else {"device": device}))
    lr, (data, labels), loss = w.lr, w.feed, w.loss

    def step(batch: dict) -> float:
        return float(graph(**{data: batch["data"], labels: batch["labels"]},
                           learning_rate=lr)[loss])

    return _autocast(w, step, device), graph


def torch_runner(w: Workload, compiled: str | None = None, channels_last: bool = False,
                 device: str = "cpu") -> Step:
    """The hand-written loop: zero_grad, loss, backward, step, loss.item().

    ``compiled``: None (eager), 'model' (``torch.compile`` of the model) or 'step'
    (``torch.compile`` of the whole step: forward, backward and optimizer update). The input
    noise is drawn outside the compiled code, so all runners draw the same numbers.
    ``channels_last``: the model and its images in channels-last memory order, as a PyTorch
    user tunes a ConvNet for the CPU. ``device``: where the model computes (each batch is
    copied there from NumPy, as optimus copies it).
    """
    model = w.torch_model(w.params).to(device)
    on_device = torch.device(device).type != "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
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
        if on_device:  # not on the CPU, where .to() would add two calls to eager's step
            x, y = x.to(device), y.to(device)
        if noise:
            x = x + noise * torch.randn_like(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return train_step(x, y).item()

    return _autocast(w, step, device)


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


def _with_params(graph: optimus.Graph, params: dict[str, np.ndarray]) -> optimus.Graph:
    graph.param_values = params
    return graph


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
        return _with_params(example000.build_trainer(engine), p)

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
                    _mnist_batches(25, count, 1), params, graph, model, _cross_entropy,
                    maps=True, jax=lambda p: jax_steps.runner(jax_steps.seed000_loss, p,
                                                              "sgd", 0.02))


# -- seed 001: the LXMLS sentiment MLP ------------------------------------------------------------
def _lxmls_params(geometry: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The LXMLS toolkit's initial weights of a sigmoid MLP, in optimus names and layouts."""
    w1, b1, w2, b2 = example001.lxmls_init(geometry)  # (n_out, n_in) layouts
    params = {"hidden.weights": w1.T, "hidden.bias": b1[:, 0], "output.weights": w2.T,
              "output.bias": b2[:, 0]}
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}


def _sigmoid_mlp(p: dict[str, np.ndarray]) -> nn.Module:
    """The hand-written PyTorch model of `_lxmls_params`' weights."""
    return nn.Sequential(_linear(p["hidden.weights"], p["hidden.bias"]), nn.Sigmoid(),
                         _linear(p["output.weights"], p["output.bias"]))


def seed001(count: int = 320) -> Workload:
    (x, y), _ = sentiment.load("books")
    params = _lxmls_params(example001.GEOMETRY)
    batches = [{"data": x[i:i + 5], "labels": y[i:i + 5]}  # in order, read-only views
               for i in range(0, min(len(y), 5 * count), 5)]

    def graph(p, engine="auto"):  # the example's builder takes the LXMLS layouts
        return example001.build_graph([p["hidden.weights"].T, p["hidden.bias"][:, None],
                                       p["output.weights"].T, p["output.bias"][:, None]],
                                      engine)

    def numpy_step(p):
        return numpy_steps.mlp_sigmoid(p, 0.01)

    def jax_step(p):
        return jax_steps.runner(jax_steps.seed001_loss, p, "sgd", 0.01)

    return Workload("seed-001", "MLP 13989-20-2, batch 5, SGD", 5, "sgd", 0.01, batches,
                    params, graph, _sigmoid_mlp, _cross_entropy, numpy_step, jax=jax_step)


def bag_of_words(count: int = 32, vocabulary: int = 100_000, words: int = 90) -> Workload:
    """Seed 001's model on a larger vocabulary: synthetic bag-of-words rows (``words`` distinct
    words each, counts 1-3; label 1 when most of a row's words come from the upper half of the
    vocabulary), batch 5, SGD 0.1. Every runner computes the products densely except optimus,
    which multiplies on the columns a batch uses (`optimus.fast.sparse`)."""
    rng = np.random.RandomState(5)
    batches = []
    for _ in range(count):
        labels = rng.randint(0, 2, 5)
        data = np.zeros((5, vocabulary), np.float32)
        for row, label in zip(data, labels):
            half = vocabulary // 2
            mostly = rng.choice(half, words * 2 // 3, replace=False) + label * half
            rest = rng.choice(vocabulary, words - len(mostly), replace=False)
            row[mostly], row[rest] = rng.randint(1, 4, len(mostly)), rng.randint(1, 4, len(rest))
        batches.append({"data": data, "labels": labels.astype(np.int64)})
    params = _lxmls_params((vocabulary, 20, 2))

    def graph(p, engine="auto"):
        x, y = optimus.Input("data", (None, vocabulary)), optimus.Input("labels", (None,), "int64")
        lr = optimus.Input("learning_rate", None)
        hidden = optimus.Affine("hidden", x.shape, (None, 20), act_type="sigmoid")
        output = optimus.Affine("output", hidden.output.shape, (None, 2), act_type="linear")
        xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
        edges = optimus.ConnectionManager([
            (x, hidden.input), (hidden.output, output.input), (output.output, xent.logits),
            (y, xent.index), (xent.output, loss)]).connections
        trained = [param.name for node in (hidden, output) for param in node.params.values()]
        return _with_params(optimus.Graph("bag_of_words", [x, y, lr], [hidden, output, xent],
                                          edges, [loss], loss, {"learning_rate": trained},
                                          engine=engine), p)

    return Workload("bag-of-words", f"MLP {vocabulary}-20-2 on bag-of-words rows, batch 5, SGD",
                    5, "sgd", 0.1, batches, params, graph, _sigmoid_mlp, _cross_entropy,
                    lambda p: numpy_steps.mlp_sigmoid(p, 0.1),
                    jax=lambda p: jax_steps.runner(jax_steps.seed001_loss, p, "sgd", 0.1))


# -- seed 002: the Blocks MLP with L2 -------------------------------------------------------------
L2 = example002.L2_WEIGHT


def seed002(count: int = 48) -> Workload:
    rng = np.random.RandomState(2)
    params = _affine_graph_params(rng, {
        "input_to_hidden.weights": (784, 100), "input_to_hidden.bias": (100,),
        "hidden_to_output.weights": (100, 10), "hidden_to_output.bias": (10,)}, std=0.01)

    def graph(p, engine="auto"):
        return _with_params(example002.build(engine)[0], p)

    def model(p):
        return nn.Sequential(_linear(p["input_to_hidden.weights"], p["input_to_hidden.bias"]),
                             nn.ReLU(),
                             _linear(p["hidden_to_output.weights"], p["hidden_to_output.bias"]))

    def loss(forward, module, x, y):
        return (F.cross_entropy(forward(x), y)
                + L2 * (module[0].weight.pow(2).sum() + module[2].weight.pow(2).sum()))

    def numpy_step(p):
        return numpy_steps.mlp_relu_l2(p, 0.1, L2)

    def jax_step(p):
        return jax_steps.runner(jax_steps.seed002_loss(L2), p, "sgd", 0.1)

    return Workload("seed-002", "MLP 784-100-10, batch 256, SGD + L2", 256, "sgd", 0.1,
                    _mnist_batches(256, count, 2, flat=True), params, graph, model, loss,
                    numpy_step, feed=("features", "targets"), loss="cost", jax=jax_step)


# -- seed 004: the Flux ConvNet, and two variants ------------------------------------------------
def seed004(count: int = 32, dropout: float = 0.0, batch_norm: bool = False) -> Workload:
    """The Flux ConvNet; ``dropout``: Dropout at that rate before the dense layer;
    ``batch_norm``: BatchNorm after each conv (conv, relu, batch norm, max-pool)."""
    rng = np.random.RandomState(4)
    params = {}
    maps_in = 1
    for i, maps in enumerate((16, 32, 32)):
        params[f"conv{i}.weights"] = _glorot(rng, (maps, maps_in, 3, 3))
        params[f"conv{i}.bias"] = np.zeros(maps, np.float32)
        if batch_norm:  # BatchNorm's own starting values: gamma 1, beta 0, statistics (0, 1)
            params.update({f"norm{i}.gamma": np.ones(maps, np.float32),
                           f"norm{i}.beta": np.zeros(maps, np.float32),
                           f"norm{i}.running_mean": np.zeros(maps, np.float32),
                           f"norm{i}.running_var": np.ones(maps, np.float32)})
        maps_in = maps
    params["dense.weights"] = _glorot(rng, (288, 10))
    params["dense.bias"] = np.zeros(10, np.float32)

    def graph(p, engine="auto", device="cpu"):
        trainer, _ = example004.build(dropout=dropout, batch_norm=batch_norm, engine=engine,
                                      device=device)
        return _with_params(trainer, p)

    def model(p):
        layers = []
        for i in range(3):
            layers += [_conv(p[f"conv{i}.weights"], p[f"conv{i}.bias"], padding=1), nn.ReLU()]
            if batch_norm:
                norm = nn.BatchNorm2d(len(p[f"norm{i}.gamma"]))
                with torch.no_grad():
                    for mine, theirs in (("weight", "gamma"), ("bias", "beta"),
                                         ("running_mean", "running_mean"),
                                         ("running_var", "running_var")):
                        getattr(norm, mine).copy_(torch.from_numpy(p[f"norm{i}.{theirs}"]))
                layers.append(norm)
            layers.append(nn.MaxPool2d(2))
        if dropout:
            layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers, nn.Flatten(),
                             _linear(p["dense.weights"], p["dense.bias"]))

    title = "ConvNet, batch 128, Adam, noise" + (f", Dropout({dropout})" if dropout else "") + (
        ", BatchNorm after each conv" if batch_norm else "")
    name = "seed-004" + ("-dropout" if dropout else "") + ("-batchnorm" if batch_norm else "")
    return Workload(name, title, 128, "adam", 3e-3, _mnist_batches(128, count, 4), params,
                    graph, model, _cross_entropy, noise=0.1, feed=("images", "labels"),
                    draws_in_model=bool(dropout), maps=True,
                    optimus_matches="eager_cl" if batch_norm else "eager",
                    jax=None if dropout or batch_norm else lambda p: jax_steps.runner(
                        jax_steps.seed004_loss, p, "adam", 3e-3, noise=0.1))


def seed004_dropout(count: int = 32) -> Workload:
    return seed004(count, dropout=0.25)


def seed004_batchnorm(count: int = 32) -> Workload:
    return seed004(count, batch_norm=True)


def seed004_bf16(count: int = 32) -> Workload:
    """seed-004 with every runner's step under bfloat16 autocast (products in bfloat16)."""
    w = seed004(count)
    return dataclasses.replace(w, name="seed-004-bf16", title=w.title + ", bfloat16 autocast",
                               precision="bf16", jax=None)


def _glorot(rng: np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    """Glorot-uniform weights, as Flux's default (conv ``(out, in, h, w)``, dense ``(in, out)``)."""
    if len(shape) == 4:
        fan_in, fan_out = int(np.prod(shape[1:])), shape[0] * int(np.prod(shape[2:]))
    else:
        fan_in, fan_out = shape
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape).astype(np.float32)


WORKLOADS = {"seed-000": seed000, "seed-001": seed001, "seed-002": seed002, "seed-004": seed004,
             "seed-004-dropout": seed004_dropout, "seed-004-batchnorm": seed004_batchnorm,
             "seed-004-bf16": seed004_bf16, "bag-of-words": bag_of_words}
