"""Every node case round-trips: a graph around it is saved (JSON + npz) and loaded back, and the
loaded graph gives identical outputs, config and parameters."""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

import optimus

from .cases import CASES, Case

IDS = [c.id for c in CASES]


def graph_around(node, case: Case, name: str = "g", **options) -> optimus.Graph:
    """Inputs ``in_<port>`` (batch axis None), the node, and an Output per output port."""
    inputs, edges = [], optimus.ConnectionManager()
    for port, array in case.inputs.items():
        integer = np.issubdtype(array.dtype, np.integer)
        shape = None if array.ndim == 0 else (None, *array.shape[1:])
        inp = optimus.Input(f"in_{port}", shape, "int64" if integer else "float32")
        inputs.append(inp)
        edges.add_edge(inp, node.inputs[port])
    outputs = [optimus.Output(f"out_{port}") for port in node.outputs]
    for out, port in zip(outputs, node.outputs.values()):
        edges.add_edge(port, out)
    return optimus.Graph(name, inputs, [node], edges.connections, outputs, **options)


def feed(case: Case) -> dict:
    return {f"in_{port}": a for port, a in case.inputs.items()}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_save_load_gives_identical_outputs(case, tmp_path):
    node = optimus.registry.lookup("node", case.type)(name="node", **case.kwargs)
    graph = graph_around(node, case)
    graph.param_values = {f"node.{k}": v.astype(np.float32)
                          for k, v in case.param_values(node).items()}
    before = graph(**feed(case))
    optimus.save(graph, tmp_path / "def.json", tmp_path / "params.npz")
    loaded = optimus.load(tmp_path / "def.json", tmp_path / "params.npz")
    after = loaded(**feed(case))
    assert list(after) == list(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    twin = loaded.nodes["node"]
    assert type(twin) is type(node)
    assert twin.get_config() == json.loads(json.dumps(node.get_config()))
    for key, value in graph.param_values.items():
        np.testing.assert_array_equal(loaded.param_values[key], value)


@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("case", [c for c in CASES if not c.training],
                         ids=[c.id for c in CASES if not c.training])
def test_graph_output_matches_reference(case, engine):
    """A graph call (float32, on each engine: the autograd reference path and the default,
    which runs the fast path where it covers the node) computes what the reference does."""
    node = optimus.registry.lookup("node", case.type)(name="node", **case.kwargs)
    graph = graph_around(node, case, engine=engine)
    values = case.param_values(node)
    graph.param_values = {f"node.{k}": v.astype(np.float32) for k, v in values.items()}
    out = graph(**feed(case))["out_output"]
    as_tensor = {p: torch.tensor(a) if np.issubdtype(a.dtype, np.integer)
                 else torch.tensor(a, dtype=torch.float32) for p, a in case.inputs.items()}
    params = {k: torch.tensor(v, dtype=torch.float32) for k, v in values.items()}
    with torch.no_grad():
        expected = case.reference(as_tensor, params).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


SHAPED = [c for c in CASES if c.fixed_shape and "input" in c.inputs and c.inputs["input"].ndim
          and "input_shape" in inspect.signature(
              optimus.registry.lookup("node", c.type).__init__).parameters
          and "input_shape" not in c.kwargs]


@pytest.mark.parametrize("case", SHAPED, ids=[c.id for c in SHAPED])
def test_a_node_built_with_an_input_shape_round_trips(case, tmp_path):
    shape = [None, *case.inputs["input"].shape[1:]]
    node = optimus.registry.lookup("node", case.type)(name="node", input_shape=shape,
                                                      **case.kwargs)
    graph = graph_around(node, case)
    graph.param_values = {f"node.{k}": v.astype(np.float32)
                          for k, v in case.param_values(node).items()}
    optimus.save(graph, tmp_path / "def.json", tmp_path / "params.npz")
    loaded = optimus.load(tmp_path / "def.json", tmp_path / "params.npz")
    twin = loaded.nodes["node"]
    assert twin.get_config()["input_shape"] == shape
    assert twin.output.shape == node.output.shape is not None
    np.testing.assert_array_equal(loaded(**feed(case))["out_output"],
                                  graph(**feed(case))["out_output"])
