"""`optimus.tune_memory`: an explicit, idempotent call; building or running a graph never
makes it."""
from __future__ import annotations

import subprocess
import sys
import textwrap

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


# Allocates, fills and frees a 64 MiB buffer (above glibc's 32 MiB ceiling for heap buffers)
# three times, as the first steps of a training loop do, then prints the minor page faults of
# three more.
_REALLOCATE = textwrap.dedent("""
    import resource, sys
    import torch
    import optimus
    tuned = optimus.tune_memory() if sys.argv[1] == "tuned" else False
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        torch.empty(2**24).fill_(1.0)
    before = faults()
    for _ in range(3):
        torch.empty(2**24).fill_(1.0)
    print(tuned, faults() - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_tuned_process_reuses_a_freed_large_buffer():
    """After `tune_memory`, a freed 64 MiB buffer stays in the heap and the next one reuses
    its pages; untuned, glibc maps each one afresh (16,384 pages of 4 KiB to fault in)."""
    runs = {}
    for mode in ("tuned", "default"):
        out = subprocess.run([sys.executable, "-c", _REALLOCATE, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        runs[mode] = (out[0] == "True", int(out[1]))
    tuned, faults = runs["tuned"]
    if not tuned:
        pytest.skip("not glibc: tune_memory does nothing")
    assert runs["default"][1] >= 3 * 16_384 * 0.9, runs  # the control: fresh pages each time
    assert faults < 1_000, runs
