"""Graphs sharing nodes and devices (`optimus.devices`): a graph is not built on a device that
would move parameters from under another live graph; once that graph is gone, it may be."""
from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

import optimus
from optimus.errors import GraphError


def predictor(dense, device=None):
    x, out = optimus.Input("x", (None, 3)), optimus.Output("out")
    return optimus.Graph("p", [x], [dense], {"x": ["dense.input"], "dense.output": ["out"]},
                         [out], device=device)


OTHER = "cuda" if torch.cuda.is_available() else "meta"  # 'meta': a device on every machine


def test_a_graph_on_another_device_than_a_live_sharer_is_an_error():
    dense = optimus.Affine("dense", (None, 3), (None, 2), "linear")
    first = predictor(dense)
    with pytest.raises(GraphError, match=rf"Graph 'p': parameter 'dense.weights' of node "
                                         rf"'dense' is on cpu, where graph 'p' uses it; "
                                         rf"building this graph on {OTHER}"):
        predictor(dense, device=OTHER)
    assert dense.weights.tensor.device.type == "cpu"  # nothing moved
    assert first(x=np.ones((2, 3)))["out"].shape == (2, 2)
    same = predictor(dense, device="cpu")  # same device: shared, fine
    assert same.device.type == "cpu"


def test_once_the_other_graph_is_gone_the_parameters_may_move():
    dense = optimus.Affine("dense", (None, 3), (None, 2), "linear")
    first = predictor(dense)
    del first
    gc.collect()
    moved = predictor(dense, device=OTHER)  # no error
    assert moved.device.type == OTHER
    if OTHER == "cuda":  # torch cannot move a parameter to 'meta' in place
        assert dense.weights.tensor.device.type == "cuda"
        with pytest.raises(GraphError, match="is on cuda:0, where graph 'p' uses it"):
            predictor(dense, device="cpu")
