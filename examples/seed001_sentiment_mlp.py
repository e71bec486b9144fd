"""Seed 001: LXMLS day 5, an MLP on Amazon "books" reviews, three ways.

MLP [13989, 20, 2] (sigmoid, softmax), cross-entropy, SGD lr 0.01 on batches of 5 taken in
order, 5 epochs, both layers initialised uniformly in +-4*sqrt(6/(n_in+n_out)) from
RandomState(1234), biases zero. Trained (1) with backpropagation written by hand in NumPy, as
the tutorial's exercise, (2) with optimus on its reference autograd path, and (3) with optimus on
its fast path (the tutorial's "compiled batch update"). All three reach the same accuracy; the
seconds per epoch of each are printed.

    python examples/seed001_sentiment_mlp.py [--quick]

A full run lands on the tutorial's numbers (train 0.9644, test 0.785, all three ways);
``--quick`` (the first 800 training reviews, 2 epochs, the whole test set) on train 0.8738,
test 0.725.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import optimus
from optimus.data import DataStream, SequentialScheme
from optimus.datasets import sentiment
from optimus.train import FinishAfter

GEOMETRY = (13989, 20, 2)
BATCH_SIZE, LEARNING_RATE, EPOCHS = 5, 0.01, 5


def report(*lines: str) -> None:
    """Print on rank 0 alone: under torchrun every process runs this script."""
    if optimus.distributed.is_main():
        print(*lines)


def lxmls_init(geometry=GEOMETRY, seed: int = 1234) -> list[np.ndarray]:
    """The LXMLS toolkit's weights, ``(n_out, n_in)`` per layer, and zero biases."""
    rng = np.random.RandomState(seed)
    params = []
    for n_in, n_out in zip(geometry[:-1], geometry[1:]):
        bound = 4 * np.sqrt(6.0 / (n_in + n_out))
        params += [rng.uniform(-bound, bound, size=(n_out, n_in)), np.zeros((n_out, 1))]
    return params


class NumpyMLP:
    """The tutorial's exercise: a sigmoid/softmax MLP with backpropagation by hand.

    Examples are columns, as in the LXMLS toolkit: ``x`` is ``(features, batch)``.
    """

    def __init__(self, params: list[np.ndarray]):
        self.params = [p.copy() for p in params]

    def forward(self, x: np.ndarray, all_outputs: bool = False):
        W1, b1, W2, b2 = self.params
        hidden = 1.0 / (1.0 + np.exp(-(W1 @ x + b1)))
        z = W2 @ hidden + b2
        e = np.exp(z - z.max(axis=0))
        probs = e / e.sum(axis=0)
        return (hidden, probs) if all_outputs else probs

    def grads(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Gradients of the mean cross-entropy, layer by layer from the top."""
        W1, b1, W2, b2 = self.params
        hidden, probs = self.forward(x, all_outputs=True)
        delta2 = (probs - np.eye(probs.shape[0])[:, y]) / y.shape[0]  # softmax + cross-entropy
        delta1 = (W2.T @ delta2) * hidden * (1 - hidden)  # through the sigmoid
        return [delta1 @ x.T, delta1.sum(axis=1, keepdims=True),
                delta2 @ hidden.T, delta2.sum(axis=1, keepdims=True)]

    def train(self, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
        for _ in range(epochs):
            for i in range(0, x.shape[1], BATCH_SIZE):
                grads = self.grads(x[:, i:i + BATCH_SIZE], y[i:i + BATCH_SIZE])
                for param, grad in zip(self.params, grads):
                    param -= LEARNING_RATE * grad

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.forward(x).argmax(axis=0) == y))


def build_graph(params: list[np.ndarray], engine: str) -> optimus.Graph:
    """The same MLP as an optimus graph (Affine weights are ``(n_in, n_out)``)."""
    data = optimus.Input("data", (None, GEOMETRY[0]))
    labels = optimus.Input("labels", (None,), "int64")
    lr = optimus.Input("learning_rate", None)
    hidden = optimus.Affine("hidden", data.shape, (None, GEOMETRY[1]), act_type="sigmoid")
    output = optimus.Affine("output", hidden.output.shape, (None, GEOMETRY[2]),
                            act_type="linear")
    softmax = optimus.Softmax("softmax")
    nll = optimus.NegativeLogLikelihoodLoss("nll")
    loss, probs = optimus.Output("loss"), optimus.Output("likelihoods")
    edges = optimus.ConnectionManager([
        (data, hidden.input), (hidden.output, output.input), (output.output, softmax.input),
        (softmax.output, nll.likelihoods), (labels, nll.index), (nll.output, loss),
        (softmax.output, probs)])
    updates = optimus.ConnectionManager(
        [(lr, p) for node in (hidden, output) for p in (node.weights, node.bias)])
    graph = optimus.Graph(f"sentiment_mlp_{engine}", [data, labels, lr],
                          [hidden, output, softmax, nll], edges.connections, [loss, probs],
                          loss, updates.connections, engine=engine)
    W1, b1, W2, b2 = params
    graph.param_values = {"hidden.weights": W1.T, "hidden.bias": b1[:, 0],
                          "output.weights": W2.T, "output.bias": b2[:, 0]}
    return graph


def train_optimus(graph: optimus.Graph, x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """Train ``graph`` on ``(x, y)`` in order, batch by batch; return seconds per epoch."""
    stream = DataStream({"data": x, "labels": y}, SequentialScheme(len(y), BATCH_SIZE))
    driver = optimus.Driver(graph, extensions=[FinishAfter(epochs=epochs)], verbose=0)
    start = time.perf_counter()
    driver.fit(stream, {"learning_rate": LEARNING_RATE})
    return (time.perf_counter() - start) / epochs


def optimus_accuracy(graph: optimus.Graph, x: np.ndarray, y: np.ndarray) -> float:
    probs = graph(data=x, labels=y, learning_rate=0.0)["likelihoods"]
    return float(np.mean(probs.argmax(axis=1) == y))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two epochs on 800 reviews")
    args = parser.parse_args(argv)
    optimus.tune_memory()  # keep freed activation memory between steps (glibc; see README)
    (train_x, train_y), (test_x, test_y) = sentiment.load("books")
    epochs = EPOCHS
    if args.quick:
        train_x, train_y, epochs = train_x[:800], train_y[:800], 2
    params = lxmls_init()
    result: dict[str, float] = {}

    mlp = NumpyMLP(params)
    x64 = train_x.T.astype(np.float64)
    start = time.perf_counter()
    mlp.train(x64, train_y, epochs)
    seconds = (time.perf_counter() - start) / epochs
    runs = [("numpy", mlp.accuracy(x64, train_y),
             mlp.accuracy(test_x.T.astype(np.float64), test_y), seconds)]

    for engine in ("reference", "fast"):
        graph = build_graph(params, engine)
        seconds = train_optimus(graph, train_x, train_y, epochs)
        runs.append((f"optimus_{engine}", optimus_accuracy(graph, train_x, train_y),
                     optimus_accuracy(graph, test_x, test_y), seconds))

    for name, acc_train, acc_test, seconds in runs:
        report(f"{name:18s} MLP {list(GEOMETRY)} Amazon Sentiment Accuracy train: "
              f"{acc_train:f} test: {acc_test:f}  ({seconds:.3f} s per epoch)")
        result[f"{name}_train"] = round(acc_train, 4)
        result[f"{name}_test"] = round(acc_test, 4)
        result[f"{name}_s_per_epoch"] = round(seconds, 3)
    result["fastest"] = min(runs, key=lambda run: run[3])[0]
    report("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
