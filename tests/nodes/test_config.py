"""Bad config raises `ConfigError` naming the node and the field, at construction."""
from __future__ import annotations

import pytest

import optimus
from optimus.errors import ConfigError

from .cases import CASES

CONV = {"input_shape": [None, 2, 7, 7], "weight_shape": [3, 2, 3, 3]}
DENSE = {"input_shape": [None, 5], "output_shape": [None, 3]}
POOL = {"input_shape": [None, 3, 5, 5], "pool_shape": [2, 2]}

# (node type, kwargs, the field the error must name)
BAD = [
    ("Affine", {**DENSE, "input_shape": [None]}, "input_shape"),
    ("Affine", {**DENSE, "input_shape": [None, -3]}, "input_shape"),
    ("Affine", {**DENSE, "output_shape": [None]}, "output_shape"),
    ("Affine", {**DENSE, "output_shape": [None, 0]}, "output_shape"),
    ("Affine", {**DENSE, "act_type": "swish9"}, "act_type"),
    ("CenteredAffine", {**DENSE, "act_type": "bogus"}, "act_type"),
    ("CenteredAffine", {**DENSE, "input_shape": 5}, "input_shape"),
    ("RadialBasis", {**DENSE, "output_shape": "big"}, "output_shape"),
    ("Multiply", {"weight_shape": [0, 3]}, "weight_shape"),
    ("Multiply", {"weight_shape": [1, 4], "broadcast": [1]}, "broadcast"),
    ("Multiply", {"weight_shape": [1, 4], "broadcast": [5]}, "broadcast"),
    ("Constant", {"shape": [-1, 2]}, "shape"),
    ("Constant", {"shape": [None, 2]}, "shape"),
    ("Conv3D", {**CONV, "input_shape": [None, 2, 7]}, "input_shape"),
    ("Conv3D", {**CONV, "weight_shape": [3, 2]}, "weight_shape"),
    ("Conv3D", {**CONV, "weight_shape": [3, 5, 3, 3]}, "weight_shape"),
    ("Conv3D", {**CONV, "weight_shape": [3, 2, -3, 3]}, "weight_shape"),
    ("Conv3D", {**CONV, "border_mode": "half"}, "border_mode"),
    ("Conv3D", {**CONV, "border_mode": "same", "downsample_shape": [2, 2]}, "border_mode"),
    ("Conv3D", {**CONV, "pool_shape": [0, 2]}, "pool_shape"),
    ("Conv3D", {**CONV, "pool_shape": [2, 2, 2]}, "pool_shape"),
    ("Conv3D", {**CONV, "downsample_shape": [-1, 1]}, "downsample_shape"),
    ("Conv3D", {**CONV, "act_type": "nope"}, "act_type"),
    ("Conv3D", {**CONV, "padding": 1, "border_mode": "full"}, "padding"),
    ("Conv3D", {**CONV, "padding": -1}, "padding"),
    ("Conv3D", {**CONV, "stride": 2, "downsample_shape": [2, 2]}, "stride"),
    ("Conv3D", {**CONV, "stride": 0}, "stride"),
    ("Conv3D", {**CONV, "weight_shape": [3, 2, 9, 9]}, "input_shape"),  # kernel > image
    ("Conv2D", {"input_shape": [None, 2, 7, 7], "kernel_size": 3}, "num_filters"),
    ("Conv2D", {"input_shape": [None, 2, 7, 7], "num_filters": 0, "kernel_size": 3},
     "num_filters"),
    ("Conv2D", {"input_shape": [None, 2, 7, 7], "num_filters": 2, "kernel_size": [3, 0]},
     "kernel_size"),
    ("Conv2D", {**CONV, "num_filters": 3}, "weight_shape"),
    ("Conv2D", {**CONV, "padding": "half"}, "padding"),
    ("Conv2D", {**CONV, "padding": [1, -1]}, "padding"),
    ("Conv2D", {**CONV, "stride": 0}, "stride"),
    ("Conv2D", {**CONV, "padding": "same", "stride": 2}, "stride"),
    ("Conv2D", {**CONV, "act_type": "unknown"}, "act_type"),
    ("Conv2D", {"input_shape": [None, 7, 7], "num_filters": 2, "kernel_size": 3},
     "input_shape"),
    ("MaxPool", {**POOL, "pool_shape": 0}, "pool_shape"),
    ("MaxPool", {**POOL, "stride": [1, 0]}, "stride"),
    ("MaxPool", {**POOL, "padding": 2}, "padding"),
    ("MaxPool", {**POOL, "input_shape": [None, 5, 5]}, "input_shape"),
    ("MaxPool", {**POOL, "pool_shape": [7, 7]}, "input_shape"),  # window > image
    ("AvgPool", {**POOL, "pool_shape": [2, -2]}, "pool_shape"),
    ("AvgPool", {**POOL, "padding": -1}, "padding"),
    ("BatchNorm", {"input_shape": [None]}, "input_shape"),
    ("BatchNorm", {"input_shape": [None, 3], "momentum": 0.0}, "momentum"),
    ("BatchNorm", {"input_shape": [None, 3], "momentum": 1.5}, "momentum"),
    ("BatchNorm", {"input_shape": [None, 3], "epsilon": -1e-5}, "epsilon"),
    ("Dropout", {"rate": 1.0}, "rate"),
    ("Dropout", {"rate": -0.1}, "rate"),
    ("Dropout", {"rate": "half"}, "rate"),
    ("GaussianNoise", {"std": -0.1}, "std"),
    ("GaussianNoise", {"std": None}, "std"),
    ("Softmax", {"axis": "classes"}, "axis"),
    ("LogSoftmax", {"axis": 1.5}, "axis"),
    ("SoftRectifiedLinear", {"knee": 0.0}, "knee"),
    ("SoftRectifiedLinear", {"knee": True}, "knee"),
    ("Log", {"epsilon": -1.0}, "epsilon"),
    ("Log", {"gain": "x"}, "gain"),
    ("Power", {"exponent": None}, "exponent"),
    ("Normalize", {"mode": "l3"}, "mode"),
    ("Normalize", {"scale_factor": "one"}, "scale_factor"),
    ("NormalizeDim", {"axis": None}, "axis"),
    ("NormalizeDim", {"axis": 1, "mode": "max"}, "mode"),
    ("Dimshuffle", {"axes": [0, 0]}, "axes"),
    ("Dimshuffle", {"axes": [0, 2]}, "axes"),
    ("Dimshuffle", {"axes": [0, "y"]}, "axes"),
    ("Dimshuffle", {"axes": "x0"}, "axes"),
    ("Flatten", {"ndim": 0}, "ndim"),
    ("Slice", {"slices": [[0, 4, 0]]}, "slices"),
    ("Slice", {"slices": ["a"]}, "slices"),
    ("Slice", {"slices": 3}, "slices"),
    ("SliceGT", {"value": "zero"}, "value"),
    ("Sum", {"axis": "rows"}, "axis"),
    ("Mean", {"axis": [1, 1]}, "axis"),
    ("Max", {"axis": 1.0}, "axis"),
    ("Min", {"axis": [0, "a"]}, "axis"),
    ("L1Magnitude", {"axis": "x"}, "axis"),
    ("L2Magnitude", {"axis": [2, 2]}, "axis"),
    ("Add", {"num_inputs": 0}, "num_inputs"),
    ("Add", {"num_inputs": "two"}, "num_inputs"),
    ("Concatenate", {"num_inputs": -1}, "num_inputs"),
    ("Concatenate", {"axis": "last"}, "axis"),
    ("Stack", {"axes": [0, 2]}, "axes"),
    ("Stack", {"num_inputs": 1.5}, "num_inputs"),
    ("CrossEntropy", {"epsilon": -1.0}, "epsilon"),
    ("CrossEntropyLoss", {"epsilon": "tiny"}, "epsilon"),
    ("WeightDecayPenalty", {"weight": -0.1}, "weight"),
    ("WeightDecayPenalty", {"weight": "0.1"}, "weight"),
    ("SimilarityMargin", {"sim_margin": "a"}, "sim_margin"),
    ("SimilarityMargin", {"diff_margin": [1.0]}, "diff_margin"),
    ("ContrastiveMargin", {"filter_zeros": "yes"}, "filter_zeros"),
    ("ContrastiveMargin", {"margin_diff": "b"}, "margin_diff"),
    ("PairwiseRank", {"alpha": "x"}, "alpha"),
    ("PairwiseRank", {"margin": None, "alpha": [2]}, "alpha"),
    ("WeightDecayPenalty", {"weight": 0.1, "form": "l2"}, "form"),
    # optional input shapes: checked, and shapes a node cannot take fail at construction
    ("Sigmoid", {"input_shape": [None, -3]}, "input_shape"),
    ("Tanh", {"input_shape": "wide"}, "input_shape"),
    ("RectifiedLinear", {"input_shape": [None, 2.5]}, "input_shape"),
    ("Softmax", {"axis": 2, "input_shape": [None, 3]}, "axis"),
    ("LogSoftmax", {"axis": -3, "input_shape": [None, 3]}, "axis"),
    ("GaussianNoise", {"std": 0.1, "input_shape": [None, 0]}, "input_shape"),
    ("Dropout", {"input_shape": ["rows", 3]}, "input_shape"),
    ("Sqrt", {"input_shape": 3.5}, "input_shape"),
    ("Sum", {"axis": 3, "input_shape": [None, 3]}, "axis"),
    ("Flatten", {"ndim": 3, "input_shape": [None, 3]}, "input_shape"),
    ("Dimshuffle", {"axes": [1, 0], "input_shape": [None, 3, 4]}, "input_shape"),
    ("NormalizeDim", {"axis": 2, "input_shape": [None, 3]}, "axis"),
]


@pytest.mark.parametrize("type_name, kwargs, field", BAD,
                         ids=[f"{t}-{f}-{i}" for i, (t, _, f) in enumerate(BAD)])
def test_bad_config_names_node_and_field(type_name, kwargs, field):
    cls = optimus.registry.lookup("node", type_name)
    with pytest.raises(ConfigError) as info:
        cls(name="culprit", **kwargs)
    assert info.value.field == field
    assert info.value.node == "culprit"
    assert "culprit" in str(info.value)
    # Shape failures found by running the node's forward on shape-only tensors quote the
    # shapes rather than the field name.
    assert field in str(info.value) or "cannot take inputs of shape" in str(info.value)


@pytest.mark.parametrize("type_name", sorted({c.type for c in CASES}))
@pytest.mark.parametrize("name", ["", "a.b", None])
def test_bad_name(type_name, name):
    case = next(c for c in CASES if c.type == type_name)
    with pytest.raises(ConfigError) as info:
        optimus.registry.lookup("node", type_name)(name=name, **case.kwargs)
    assert info.value.field == "name"


def test_wrong_rank_at_wiring_is_a_graph_error_naming_the_node():
    data = optimus.Input("data", (None, 3, 4))
    pick = optimus.SelectIndex("pick")
    index = optimus.Input("index", (None,), "int64")
    out = optimus.Output("out")
    edges = optimus.ConnectionManager([(data, pick.input), (index, pick.index),
                                       (pick.output, out)])
    with pytest.raises(optimus.GraphError, match="SelectIndex 'pick'.*input must be"):
        optimus.Graph("g", [data, index], [pick], edges.connections, [out])


def test_dimshuffle_of_wrong_rank_names_axes():
    data, out = optimus.Input("data", (None, 3, 4)), optimus.Output("out")
    shuffle = optimus.Dimshuffle("shuffle", [1, 0])
    edges = optimus.ConnectionManager([(data, shuffle.input), (shuffle.output, out)])
    with pytest.raises(optimus.GraphError, match="shuffle.*axes has 2 input axes"):
        optimus.Graph("g", [data], [shuffle], edges.connections, [out])
