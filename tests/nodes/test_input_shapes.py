"""Nodes that can know their output shape from an ``input_shape`` take one: built with it,
``output.shape`` is known at once and can feed the next node's ``input_shape``; built without,
they are wired as before, and their saved definitions do not change."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import optimus

from .cases import CASES
from .test_coverage import library_types
from .test_numeric import build

# Node types whose input_shape is optional (the others either require it or have none).
OPTIONAL = {
    "Sigmoid", "Tanh", "RectifiedLinear", "SoftRectifiedLinear", "Softmax", "LogSoftmax",
    "Log", "Sqrt", "Power", "Normalize", "NormalizeDim", "Dropout", "GaussianNoise",
    "Sum", "Mean", "Max", "Min", "L1Magnitude", "L2Magnitude", "Flatten", "Dimshuffle", "Slice",
}
# An argument without a default: required (MaxPool and AvgPool take None there).
REQUIRED = {"Affine", "CenteredAffine", "RadialBasis", "Conv2D", "Conv3D", "BatchNorm",
            "MaxPool", "AvgPool"}


def test_which_node_types_take_an_input_shape():
    optional, required = set(), set()
    for name, cls in library_types().items():
        param = inspect.signature(cls.__init__).parameters.get("input_shape")
        if param is not None:
            (required if param.default is inspect.Parameter.empty else optional).add(name)
    assert optional == OPTIONAL
    assert required == REQUIRED


@pytest.mark.parametrize("case", [c for c in CASES if c.type in OPTIONAL and c.fixed_shape
                                  and "input_shape" not in c.kwargs],
                         ids=lambda c: c.id)
def test_declared_input_shape_gives_the_output_shape(case):
    shape = (None, *case.inputs["input"].shape[1:])
    node = optimus.registry.lookup("node", case.type)(name="node", input_shape=shape,
                                                      **case.kwargs)
    inferred = build(case).infer({"input": shape})["output"][0]
    assert node.output.shape == inferred
    assert node.get_config()["input_shape"] == shape
    assert build(case).output.shape is None  # unknown without it
    assert "input_shape" not in build(case).get_config()


def test_noise_feeds_a_convolution_by_its_output_shape(tmp_path):
    noise = optimus.GaussianNoise("noise", std=0.1, input_shape=(None, 1, 28, 28))
    assert noise.output.shape == (None, 1, 28, 28)
    conv = optimus.Conv2D("conv", input_shape=noise.output.shape, num_filters=4,
                          kernel_size=3, padding="same")
    act = optimus.Tanh("act", input_shape=conv.output.shape)
    flat = optimus.Flatten("flat", ndim=2, input_shape=act.output.shape)
    assert flat.output.shape == (None, 4 * 28 * 28)
    x, out = optimus.Input("x", (None, 1, 28, 28)), optimus.Output("out")
    edges = optimus.ConnectionManager([(x, noise.input), (noise.output, conv.input),
                                       (conv.output, act.input), (act.output, flat.input),
                                       (flat.output, out)])
    graph = optimus.Graph("g", [x], [noise, conv, act, flat], edges.connections, [out])
    data = np.random.RandomState(0).rand(3, 1, 28, 28).astype(np.float32)
    before = graph(x=data)["out"]
    assert before.shape == (3, 4 * 28 * 28)

    optimus.save(graph, tmp_path / "def.json", tmp_path / "params.npz")
    loaded = optimus.load(tmp_path / "def.json", tmp_path / "params.npz")
    assert loaded.nodes["noise"].get_config() == {"name": "noise", "std": 0.1,
                                                  "input_shape": [None, 1, 28, 28]}
    assert loaded.nodes["noise"].output.shape == (None, 1, 28, 28)
    np.testing.assert_array_equal(loaded(x=data)["out"], before)


def test_a_declared_shape_is_checked_when_wiring():
    noise = optimus.GaussianNoise("noise", std=0.1, input_shape=(None, 3))
    x, out = optimus.Input("x", (None, 4)), optimus.Output("out")
    edges = optimus.ConnectionManager([(x, noise.input), (noise.output, out)])
    with pytest.raises(optimus.GraphError, match="noise"):
        optimus.Graph("g", [x], [noise], edges.connections, [out])
