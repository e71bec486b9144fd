"""Definitions written in the original library's JSON format (github.com/ejhumphrey/optimus:
each node's constructor args plus ``type`` and ``name``; float64/int32 inputs; no
format_version) load and compute what the node case's reference does."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import optimus

from .cases import BY_ID

# Every node type the original library exported (optimus/__init__.py there), and the notebook's.
ORIGINAL_TYPES = {
    "Add", "Concatenate", "Stack", "Constant", "Dimshuffle", "Flatten", "Slice", "SliceGT",
    "L1Magnitude", "L2Magnitude", "Max", "Mean", "Min", "Sum", "Log", "Normalize",
    "NormalizeDim", "Power", "RectifiedLinear", "SoftRectifiedLinear", "Sigmoid", "Sqrt",
    "Softmax", "Tanh", "Affine", "CenteredAffine", "Conv3D", "Multiply", "RadialBasis",
    "CrossProduct", "SelectIndex", "MaxNotIndex", "MinNotIndex", "Euclidean",
    "SquaredEuclidean", "Divide", "Product", "NegativeLogLikelihood", "MeanSquaredError",
    "CrossEntropy", "CrossEntropyLoss", "WeightDecayPenalty", "SimilarityMargin",
    "ContrastiveMargin", "PairwiseRank", "NegativeLogLikelihoodLoss",
}

# (case whose inputs and reference to use, node type, the node's args as the original wrote them)
PORTED = [
    ("Add", "Add", {"num_inputs": 2}),
    ("Concatenate", "Concatenate", {"num_inputs": 2, "axis": 1}),
    ("Stack", "Stack", {"num_inputs": 2, "axes": [1, 0, 2]}),
    ("Constant", "Constant", {"shape": [2, 3]}),
    ("Dimshuffle", "Dimshuffle", {"axes": [1, "x", 0]}),
    ("Flatten", "Flatten", {"ndim": 2}),
    ("Slice", "Slice", {"slices": [None, [1, 3], 0]}),
    ("SliceGT", "SliceGT", {"value": 0.0}),
    ("L1Magnitude", "L1Magnitude", {"axis": 1}),
    ("L2Magnitude", "L2Magnitude", {"axis": None}),
    ("Max", "Max", {"axis": 1}),
    ("Mean", "Mean", {"axis": 1}),
    ("Min", "Min", {"axis": 0}),
    ("Sum", "Sum", {"axis": None}),
    ("Log", "Log", {"epsilon": 0.1, "gain": 2.0}),
    ("Normalize-l1", "Normalize", {"mode": "l1"}),  # the original never wrote scale_factor
    ("NormalizeDim-l2", "NormalizeDim", {"axis": 1, "mode": "l2"}),
    ("Power", "Power", {"exponent": 2.5}),
    ("RectifiedLinear", "RectifiedLinear", {}),
    ("SoftRectifiedLinear", "SoftRectifiedLinear", {"knee": 2.0}),
    ("Sigmoid", "Sigmoid", {}),
    ("Sqrt", "Sqrt", {}),
    ("Softmax", "Softmax", {}),
    ("Tanh", "Tanh", {}),
    ("Affine-relu", "Affine",
     {"input_shape": [None, 2, 3], "output_shape": [None, 4], "act_type": "relu"}),
    ("CenteredAffine", "CenteredAffine",
     {"input_shape": [None, 5], "output_shape": [None, 3], "act_type": "tanh"}),
    ("Conv3D", "Conv3D",
     {"input_shape": [None, 2, 7, 7], "weight_shape": [3, 2, 3, 3], "pool_shape": [2, 2],
      "downsample_shape": [1, 1], "border_mode": "valid", "act_type": "relu"}),
    ("Conv3D-3d-weights", "Conv3D",
     {"input_shape": [None, 2, 7, 7], "weight_shape": [3, 3, 3], "pool_shape": [1, 1],
      "downsample_shape": [1, 1], "border_mode": "valid", "act_type": "linear"}),
    ("Multiply", "Multiply", {"weight_shape": [1, 4], "broadcast": [0]}),
    ("RadialBasis", "RadialBasis", {"input_shape": [None, 2, 2], "output_shape": [None, 3]}),
    ("CrossProduct", "CrossProduct", {}),
    ("SelectIndex", "SelectIndex", {}),
    ("MaxNotIndex", "MaxNotIndex", {}),
    ("MinNotIndex", "MinNotIndex", {}),
    ("Euclidean", "Euclidean", {}),
    ("SquaredEuclidean", "SquaredEuclidean", {}),
    ("Divide", "Divide", {}),
    ("Product", "Product", {}),
    ("NegativeLogLikelihood", "NegativeLogLikelihood", {}),
    ("NegativeLogLikelihoodLoss", "NegativeLogLikelihoodLoss", {}),
    ("MeanSquaredError", "MeanSquaredError", {}),
    ("CrossEntropy", "CrossEntropy", {"epsilon": 1e-06}),
    ("CrossEntropyLoss", "CrossEntropyLoss", {"epsilon": 1e-06}),
    # `weight` is an input port; the original's penalty is weight * mean row L2 norm
    ("WeightDecayPenalty-mean-row-norm-port", "WeightDecayPenalty", {}),
    ("SimilarityMargin-ports", "SimilarityMargin", {}),
    ("ContrastiveMargin-ports", "ContrastiveMargin", {}),
    ("PairwiseRank-ports", "PairwiseRank", {}),
]


def original_definition(case, type_name: str, args: dict) -> dict:
    """A one-node graph as the original library's `save` wrote it."""
    inputs, connections = [], {}
    for port, array in case.inputs.items():
        integer = np.issubdtype(array.dtype, np.integer)
        inputs.append({"dtype": "int32" if integer else "float64",
                       "shape": None if array.ndim == 0 else [None, *array.shape[1:]],
                       "type": "Input", "name": f"in_{port}"})
        connections[f"in_{port}"] = [f"node.{port}"]
    connections["node.output"] = ["out"]
    return {"loss": None, "name": "ported", "inputs": inputs,
            "outputs": [{"type": "Output", "name": "out"}], "connections": connections,
            "updates": {}, "nodes": [{**args, "type": type_name, "name": "node"}],
            "type": "Graph"}


def test_every_original_node_type_has_a_ported_definition():
    assert ORIGINAL_TYPES == {t for _, t, _ in PORTED}
    assert ORIGINAL_TYPES <= set(optimus.registry.registered("node"))


@pytest.mark.parametrize("case_id, type_name, args", PORTED,
                         ids=[f"{t}-{c}" for c, t, _ in PORTED])
def test_original_definition_loads_and_computes(case_id, type_name, args, tmp_path):
    case = BY_ID[case_id]
    path = tmp_path / "def.json"
    path.write_text(json.dumps(original_definition(case, type_name, args), indent=2))
    graph = optimus.load(path)
    node = graph.nodes["node"]
    values = case.param_values(node)
    graph.param_values = {f"node.{k}": v for k, v in values.items()}
    feed = {f"in_{p}": a.astype(np.int32) if np.issubdtype(a.dtype, np.integer) else a
            for p, a in case.inputs.items()}
    out = graph(**feed)["out"]
    tensors = {p: torch.tensor(a) if np.issubdtype(a.dtype, np.integer)
               else torch.tensor(a, dtype=torch.float32) for p, a in case.inputs.items()}
    with torch.no_grad():
        expected = case.reference(tensors, {k: torch.tensor(v, dtype=torch.float32)
                                            for k, v in values.items()}).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
