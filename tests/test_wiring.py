"""The wiring checks (`optimus.wiring`) as pure functions, and their cost on long graphs."""
from __future__ import annotations

import numpy as np
import pytest

import optimus
from optimus import wiring
from optimus.errors import GraphError


def chain(n: int):
    """x -> n one-input Add nodes in a row -> out, nodes listed last first."""
    x, out = optimus.Input("x", (None, 3)), optimus.Output("out")
    nodes = [optimus.Add(f"n{i}", num_inputs=1) for i in range(n)]
    connections = {"x": ["n0.input_0"], f"n{n - 1}.output": ["out"]}
    for i in range(n - 1):
        connections[f"n{i}.output"] = [f"n{i + 1}.input_0"]
    return x, nodes[::-1], connections, out


def test_a_long_chain_wires_and_runs():
    """Kahn's algorithm in O(nodes + edges): 20,000 nodes listed in reverse order."""
    x, nodes, connections, out = chain(20_000)
    graph = optimus.Graph("long", [x], nodes, connections, [out])
    assert [n.name for n in graph.order[:3]] == ["n0", "n1", "n2"]
    assert graph.order[-1].name == "n19999"
    data = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(graph(x=data)["out"], data)


def test_topological_order_keeps_the_node_order_among_ready_nodes():
    x, nodes, connections, _ = chain(3)
    source_of = {sink: src for src, sinks in connections.items() for sink in sinks}
    extra = optimus.Add("side", num_inputs=1)
    source_of["side.input_0"] = "x"
    ordered = wiring.topological_order("g", {n.name: n for n in [extra, *nodes]}, source_of, {})
    assert [n.name for n in ordered] == ["side", "n0", "n1", "n2"]


def test_a_cycle_names_its_nodes():
    a, b = optimus.Add("a", num_inputs=1), optimus.Add("b", num_inputs=1)
    source_of = {"a.input_0": "b.output", "b.input_0": "a.output"}
    with pytest.raises(GraphError, match=r"Graph 'g': the connections form a cycle through "
                                         r"nodes 'a', 'b'"):
        wiring.topological_order("g", {"a": a, "b": b}, source_of, {})


def test_resolve_connections_is_a_pure_function():
    x, nodes, connections, out = chain(2)
    index = {n.name: n for n in nodes}
    source_of = wiring.resolve_connections("g", connections, {"x": x}, index, ["out"])
    assert source_of == {"n0.input_0": "x", "n1.input_0": "n0.output", "out": "n1.output"}
    with pytest.raises(GraphError, match=r"Graph 'g': Output 'out' has no source"):
        wiring.resolve_connections("g", {"x": ["n0.input_0"],
                                         "n0.output": ["n1.input_0"]}, {"x": x}, index,
                                   ["out"])
