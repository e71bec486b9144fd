"""`optimus.tune_memory`: an explicit, idempotent call; building or running a graph never
makes it."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import optimus
from optimus import memory


def test_building_and_training_a_graph_leaves_malloc_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_done", False)
    monkeypatch.setattr(memory, "tune_memory", lambda: calls.append(1) or True)
    x, y = optimus.Input("x", (None, 3)), optimus.Input("y", (None,), "int64")
    lr = optimus.Input("lr", None)
    dense = optimus.Affine("dense", x.shape, (None, 2), "linear")
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    edges = optimus.ConnectionManager([(x, dense.input), (dense.output, xent.logits),
                                       (y, xent.index), (xent.output, loss)])
    graph = optimus.Graph("g", [x, y, lr], [dense, xent], edges.connections, [loss], loss,
                          {"lr": ["dense.weights"]})
    graph(x=np.ones((4, 3)), y=np.zeros(4, np.int64), lr=0.1)
    assert calls == [] and memory._done is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_memory_is_exported_and_idempotent():
    assert optimus.tune_memory is memory.tune_memory
    first = optimus.tune_memory()
    assert isinstance(first, bool)
    assert optimus.tune_memory() == first
