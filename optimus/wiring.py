"""The wiring checks of a `Graph`, as pure functions of its parts.

`Graph.__init__` runs them in this order: `resolve_connections` (every name exists, one source
per sink, every input port and Output fed), `topological_order` (no cycle),
`propagate_shapes` (every port accepts its source's shape), `resolve_updates` (loss and update
targets exist and are trainable) and `check_inputs_used`. Each takes the parts it reads and
the graph's name (for its messages) and returns what it derives, or raises `GraphError`
naming the graph, node and port at fault.
"""
from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from .errors import GraphError
from .nodes.base import Node
from .ports import DTYPES, Input, Parameter, Shape


def error(graph: str, message: str) -> GraphError:
    """A `GraphError` whose message starts with the graph's name."""
    return GraphError(f"Graph '{graph}': {message}")


def suggest(name: str, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for names close to ``name``, else an empty string."""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def sources(inputs: Mapping[str, Input], nodes: Mapping[str, Node]
            ) -> dict[str, tuple[Shape | None, str]]:
    """Every name that may appear on the left of a connection: Inputs, node outputs and
    parameters (e.g. weights fed to a weight-decay penalty), with ``(shape, dtype)``."""
    names = {name: (inp.shape, inp.dtype) for name, inp in inputs.items()}
    for node in nodes.values():
        for port in node.outputs.values():
            names[port.name] = (None, "")
        for param in node.params.values():
            names[param.name] = (param.shape, "float32")
    return names


def sinks(nodes: Mapping[str, Node], outputs: Iterable[str]) -> set[str]:
    """Every name that may appear on the right of a connection: input ports and Outputs."""
    names = set(outputs)
    for node in nodes.values():
        names.update(port.name for port in node.inputs.values())
    return names


def resolve_connections(graph: str, connections: Mapping[str, Sequence[str]],
                        inputs: Mapping[str, Input], nodes: Mapping[str, Node],
                        outputs: Iterable[str]) -> dict[str, str]:
    """``{sink: source}``, checking names and that no sink has two sources or none."""
    outputs = list(outputs)
    known, targets_ok = sources(inputs, nodes), sinks(nodes, outputs)
    source_of: dict[str, str] = {}
    for src, targets in connections.items():
        if src not in known:
            if src in targets_ok:
                raise error(graph, f"'{src}' is used as a source but it is an input port or "
                                   f"Output; connect a node output or Input to it instead")
            raise error(graph, f"connection source '{src}' is not an Input or node output of "
                               f"this graph.{suggest(src, known)}")
        for sink in targets:
            if sink not in targets_ok:
                hint = (" It is a source; sinks are node input ports and Outputs."
                        if sink in known else suggest(sink, targets_ok))
                raise error(graph, f"connection sink '{sink}' (from '{src}') is not a node "
                                   f"input port or Output of this graph.{hint}")
            if sink in source_of:
                raise error(graph, f"port '{sink}' has two sources, '{source_of[sink]}' and "
                                   f"'{src}'; a port takes exactly one source")
            source_of[sink] = src
    for node in nodes.values():
        for port in node.inputs.values():
            if port.name not in source_of:
                raise error(graph, f"port '{port.name}' has no source; connect it or remove "
                                   f"node '{node.name}'")
    for out in outputs:
        if out not in source_of:
            raise error(graph, f"Output '{out}' has no source; connect a node output to it "
                               f"or remove it from outputs")
    return source_of


def topological_order(graph: str, nodes: Mapping[str, Node], source_of: Mapping[str, str],
                      params: Mapping[str, Parameter]) -> list[Node]:
    """Nodes ordered so that each comes after the nodes feeding it (Kahn's algorithm, in
    O(nodes + edges)). Among nodes ready at the same time the graph's node order is kept, so
    the order (and with it the order of random draws) is stable."""
    missing: dict[str, int] = {}  # node -> number of distinct nodes it still waits for
    feeds: dict[str, list[str]] = {name: [] for name in nodes}  # node -> its readers, in order
    for name, node in nodes.items():
        deps: set[str] = set()
        for port in node.inputs.values():
            src = source_of[port.name]
            owner = src.split(".")[0] if "." in src else None
            if owner is None:
                continue  # an Input
            if owner != name:
                deps.add(owner)
            elif src not in params:
                deps.add(name)  # a node feeding itself: a cycle
        missing[name] = len(deps)
        for dep in deps:
            feeds[dep].append(name)
    order: list[Node] = []
    ready = deque(name for name in nodes if not missing[name])
    while ready:
        name = ready.popleft()
        order.append(nodes[name])
        for other in feeds[name]:
            missing[other] -= 1
            if not missing[other]:
                ready.append(other)
    if len(order) != len(nodes):
        stuck = [name for name in nodes if missing[name]]
        raise error(graph, f"the connections form a cycle through nodes "
                           f"{', '.join(map(repr, stuck))}; a graph must be acyclic")
    return order


def propagate_shapes(graph: str, inputs: Mapping[str, Input], params: Mapping[str, Parameter],
                     order: Sequence[Node], outputs: Iterable[str], source_of: Mapping[str, str]
                     ) -> tuple[dict[str, Shape], dict[str, str]]:
    """``(shapes, dtypes)`` of every value name (Inputs, parameters, node outputs, Outputs),
    checking that each input port accepts its source's shape."""
    shapes = {name: inp.shape for name, inp in inputs.items()}
    # float inputs are computed in float32, whatever dtype the caller passes
    dtypes = {name: "float32" if DTYPES[inp.dtype].is_floating_point else inp.dtype
              for name, inp in inputs.items()}
    for name, param in params.items():
        shapes[name], dtypes[name] = param.shape, "float32"
    for node in order:
        in_shapes, in_dtypes = {}, {}
        for port in node.inputs.values():
            src = source_of[port.name]
            shape = shapes[src]
            if not node.accepts(port.short_name, shape):
                raise error(graph, f"port '{port.name}' expects shape {port.shape} but its "
                                   f"source '{src}' has shape {shape}; fix the node's "
                                   f"input_shape or the connection")
            in_shapes[port.short_name] = shape
            in_dtypes[port.short_name] = dtypes[src]
        try:
            inferred = node.infer(in_shapes, in_dtypes)
        except ValueError as err:
            raise error(graph, str(err)) from None
        for port in node.outputs.values():
            shapes[port.name], dtypes[port.name] = inferred[port.short_name]
    for out in outputs:
        shapes[out] = shapes[source_of[out]]
        dtypes[out] = dtypes[source_of[out]]
    return shapes, dtypes


def resolve_updates(graph: str, updates: Mapping[str, Sequence[str]], loss: str | None,
                    inputs: Mapping[str, Input], outputs: Iterable[str],
                    shapes: Mapping[str, Shape], params: Mapping[str, Parameter]
                    ) -> dict[str, list[Parameter]]:
    """``{learning-rate Input: [parameter, ...]}``, checking the loss (a scalar Output) and
    that every target is a trainable parameter with one learning rate."""
    outputs = list(outputs)
    if updates and loss is None:
        raise error(graph, "updates are given but no loss; pass loss=<an Output>")
    if loss is not None:
        if loss not in outputs:
            raise error(graph, f"loss '{loss}' is not one of the outputs {outputs}; add it to "
                               f"outputs")
        if shapes[loss] != ():
            raise error(graph, f"loss '{loss}' must be a scalar but has shape {shapes[loss]}; "
                               f"connect a loss node's output")
    groups: dict[str, list[Parameter]] = {}
    owner: dict[str, str] = {}
    for src, targets in updates.items():
        if src not in inputs:
            raise error(graph, f"update source '{src}' is not an Input of this graph."
                               f"{suggest(src, inputs)}")
        if inputs[src].shape != ():
            raise error(graph, f"learning-rate Input '{src}' must be a scalar (shape=None)")
        groups[src] = []
        for name in targets:
            if name not in params:
                raise error(graph, f"update target '{name}' (from '{src}') is not a parameter "
                                   f"of this graph's nodes.{suggest(name, params)}")
            if name in owner:
                raise error(graph, f"parameter '{name}' is updated by both '{owner[name]}' "
                                   f"and '{src}'; give it one learning rate")
            if not params[name].trainable:
                raise error(graph, f"parameter '{name}' is not trainable")
            owner[name] = src
            groups[src].append(params[name])
    return groups


def check_inputs_used(graph: str, inputs: Iterable[str], source_of: Mapping[str, str],
                      updates: Mapping[str, Sequence[str]]) -> None:
    """Every Input feeds something or is a learning rate."""
    used = set(source_of.values())
    for name in inputs:
        if name not in used and name not in updates:
            raise error(graph, f"Input '{name}' is not connected to anything; connect it or "
                               f"remove it from inputs")
