"""Bad batches are refused before either engine runs, with an `InputError` naming the input
and the offending value or row, on the fast and the reference engine alike; a refused call
changes no parameter."""
from __future__ import annotations

import numpy as np
import pytest

import optimus
from tests.conftest import build_classifier

ENGINES = ["auto", "reference"]


def classifier(engine: str, label_dtype: str = "int32") -> optimus.Graph:
    data = optimus.Input("data", (None, 6))
    labels = optimus.Input("labels", (None,), label_dtype)
    lr = optimus.Input("learning_rate", None)
    dense = optimus.Affine("dense", (None, 6), (None, 2), "linear")
    loss_node = optimus.SoftmaxCrossEntropyLoss("xent")
    loss = optimus.Output("loss")
    graph = optimus.Graph("clf", [data, labels, lr], [dense, loss_node],
                          {"data": ["dense.input"], "dense.output": ["xent.logits"],
                           "labels": ["xent.index"], "xent.output": ["loss"]}, [loss], loss,
                          {"learning_rate": ["dense.weights", "dense.bias"]}, engine=engine)
    optimus.random_init(dense.weights, seed=0)
    return graph


def batch(rows: int = 6, **changes):
    rng = np.random.default_rng(0)
    args = {"data": rng.standard_normal((rows, 6)).astype(np.float32),
            "labels": np.arange(rows) % 2, "learning_rate": 0.1}
    args.update(changes)
    return args


BAD = {
    "a non-integer float label": (dict(labels=np.array([0, 1, 0.5, 1, 0, 1])),
                                  ["'labels'", "row 2", "0.5", "not an integer"]),
    "a label overflowing int32": (dict(labels=np.array([0, 1, 0, 2**40, 0, 1])),
                                  ["'labels'", "row 3", "1099511627776", "does not fit int32"]),
    "a float label overflowing int32": (dict(labels=np.array([0, 1, 0, 1, 2.0**40, 1])),
                                        ["'labels'", "row 4", "does not fit int32"]),
    "class 7 of 2": (dict(labels=np.array([0, 1, 7, 1, 0, 1])),
                     ["'labels'", "row 2", "7", "outside [0, 1]", "'xent'"]),
    "class -1": (dict(labels=np.array([0, -1, 0, 1, 0, 1])),
                 ["'labels'", "row 1", "-1", "outside [0, 1]"]),
    "6 images, 5 labels": (dict(labels=np.array([0, 1, 0, 1, 0])),
                           ["same number of rows", "'data' 6", "'labels' 5"]),
    "a NaN learning rate": (dict(learning_rate=float("nan")),
                            ["'learning_rate'", "nan", "not finite"]),
    "an infinite learning rate": (dict(learning_rate=np.float32("inf")),
                                  ["'learning_rate'", "inf", "not finite"]),
    "an empty training batch": (dict(data=np.zeros((0, 6), np.float32),
                                     labels=np.zeros(0, np.int64)), ["empty batch"]),
    "a ragged list": (dict(labels=[[0, 1], [1]]), ["'labels'", "not a rectangular array"]),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_batch_is_refused_before_the_step(engine, case):
    graph = classifier(engine)
    before = graph.param_values
    changes, parts = BAD[case]
    with pytest.raises(optimus.InputError) as info:
        graph(**batch(**changes))
    for part in parts:
        assert part in str(info.value), (part, str(info.value))
    for name, value in graph.param_values.items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("engine", ENGINES)
def test_the_same_batch_fixed_trains_on_both_engines_alike(engine):
    """The checks refuse nothing valid: integral float labels and int64 labels for an int32
    Input train exactly as int32 labels do, with the same loss on either engine."""
    losses = []
    for labels in (np.arange(6) % 2, (np.arange(6) % 2).astype(np.float64),
                   (np.arange(6) % 2).astype(np.int32)):
        graph = classifier(engine)
        losses.append(float(graph(**batch(labels=labels))["loss"]))
    assert losses[0] == losses[1] == losses[2]
    reference = classifier("reference")
    np.testing.assert_allclose(losses[0], float(reference(**batch())["loss"]), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8"])
def test_labels_of_every_integer_dtype_are_bounded(dtype):
    """Labels already of the Input's dtype (no conversion, the zero-copy path) are checked in
    one pass read as unsigned: a negative label and one past the classes are both refused,
    naming the row, and labels in range train."""
    graph = classifier("auto", dtype)
    bad = [np.array([0, 1, 0, 1, 2, 1], dtype)]
    if dtype != "uint8":
        bad.append(np.array([0, 1, 0, -1, 0, 1], dtype))
    for labels in bad:
        row = int(np.flatnonzero((labels < 0) | (labels > 1))[0])
        with pytest.raises(optimus.InputError, match=f"row {row} is {labels[row]}, outside"):
            graph(**batch(labels=labels))
    assert np.isfinite(graph(**batch(labels=(np.arange(6) % 2).astype(dtype)))["loss"])


@pytest.mark.parametrize("engine", ENGINES)
def test_labels_are_checked_as_tensors_too(engine):
    import torch
    graph = classifier(engine, "int64")
    with pytest.raises(optimus.InputError, match="row 5 is 3, outside"):
        graph(**batch(labels=torch.tensor([0, 1, 0, 1, 0, 3])))
    with pytest.raises(optimus.InputError, match="row 0 is 0.5"):
        graph(**batch(labels=torch.tensor([0.5, 1, 0, 1, 0, 1])))


def test_an_empty_batch_still_evaluates():
    """Only a training call needs rows: rate 0 over no rows returns empty outputs."""
    graph, _ = build_classifier()
    out = graph(data=np.zeros((0, 6), np.float32), labels=np.zeros(0, np.int32),
                learning_rate=0.0)
    assert out["likelihoods"].shape == (0, 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_batch_of_one_through_batchnorm_in_training_names_the_node(engine):
    data = optimus.Input("data", (None, 4))
    lr = optimus.Input("learning_rate", None)
    bn = optimus.BatchNorm("norm", (None, 4))
    total = optimus.Sum("total")
    loss = optimus.Output("loss")
    graph = optimus.Graph("bn", [data, lr], [bn, total],
                          {"data": ["norm.input"], "norm.output": ["total.input"],
                           "total.output": ["loss"]}, [loss], loss,
                          {"learning_rate": ["norm.gamma", "norm.beta"]}, engine=engine)
    with pytest.raises(optimus.InputError, match="node 'norm' .*at least 2"):
        graph(data=np.ones((1, 4), np.float32), learning_rate=0.1)
    graph(data=np.ones((1, 4), np.float32), learning_rate=0.0)  # evaluating: one row is fine
    graph(data=np.arange(8, dtype=np.float32).reshape(2, 4), learning_rate=0.1)


def test_conv_batchnorm_takes_a_batch_of_one():
    """A (1, C, H, W) batch has H*W values per channel: batch statistics exist."""
    data = optimus.Input("data", (None, 2, 3, 3))
    lr = optimus.Input("learning_rate", None)
    bn = optimus.BatchNorm("norm", (None, 2, 3, 3))
    total = optimus.Sum("total")
    loss = optimus.Output("loss")
    graph = optimus.Graph("bn", [data, lr], [bn, total],
                          {"data": ["norm.input"], "norm.output": ["total.input"],
                           "total.output": ["loss"]}, [loss], loss,
                          {"learning_rate": ["norm.gamma", "norm.beta"]})
    rng = np.random.default_rng(1)
    out = graph(data=rng.standard_normal((1, 2, 3, 3)).astype(np.float32), learning_rate=0.1)
    assert np.isfinite(out["loss"])
