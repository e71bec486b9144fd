"""Shared fixtures: small graphs in the notebook's style, and the shared data folder."""
import os
from pathlib import Path

import numpy as np
import pytest

# The fast engine's BLAS routes follow the static rule in tests (no timing, no route file in the
# user's cache); tests/fast/test_routes.py measures them. Set before optimus is imported.
os.environ.setdefault("OPTIMUS_ROUTES", "static")

import optimus  # noqa: E402


def build_classifier(name="clf", n_in=6, n_hidden=5, n_classes=3, nodes=None):
    """Input -> Affine(relu) -> Affine(linear) -> Softmax -> NLL, with its update edges."""
    data = optimus.Input("data", (None, n_in))
    labels = optimus.Input("labels", (None,), "int32")
    lr = optimus.Input("learning_rate", None)
    if nodes is None:
        hidden = optimus.Affine("hidden", data.shape, (None, n_hidden), "relu")
        out = optimus.Affine("out", hidden.output.shape, (None, n_classes), "linear")
        nodes = (hidden, out, optimus.Softmax("softmax"), optimus.NegativeLogLikelihoodLoss("nll"))
    hidden, out, softmax, nll = nodes
    loss, probs = optimus.Output("loss"), optimus.Output("likelihoods")
    edges = optimus.ConnectionManager([
        (data, hidden.input), (hidden.output, out.input), (out.output, softmax.input),
        (softmax.output, nll.likelihoods), (labels, nll.index),
        (softmax.output, probs), (nll.output, loss)])
    updates = optimus.ConnectionManager(
        [(lr, p) for node in (hidden, out) for p in (node.weights, node.bias)])
    graph = optimus.Graph(name, [data, labels, lr], list(nodes), edges.connections,
                          [loss, probs], loss, updates.connections)
    return graph, nodes


@pytest.fixture
def classifier():
    graph, nodes = build_classifier()
    for i, node in enumerate(nodes[:2]):
        optimus.random_init(node.weights, 0.0, 0.5, seed=i)
        optimus.random_init(node.bias, 0.0, 0.1, seed=10 + i)
    return graph


@pytest.fixture
def batch():
    rng = np.random.RandomState(0)
    return {"data": rng.randn(8, 6), "labels": rng.randint(0, 3, size=8).astype("int32")}


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data folder named by $OPTIMUS_DATA, holding ``mnist/`` and
    ``sentiment/books/``; its absence is a failure, not a skip (nothing is downloaded)."""
    value = os.environ.get("OPTIMUS_DATA")
    if not value:
        pytest.fail("OPTIMUS_DATA is not set: run the tests with OPTIMUS_DATA=../shared/data "
                    "(the folder described in ../shared/data/README.md).")
    root = Path(value)
    for folder in ("mnist", "sentiment/books"):
        if not (root / folder).is_dir():
            pytest.fail(f"OPTIMUS_DATA={value} has no {folder}/ folder; see "
                        f"../shared/data/README.md.")
    return root
