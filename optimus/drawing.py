"""Drawing a graph with Graphviz: what Keras' ``plot_model`` shows, for an optimus graph.

Each node is a box with its name, type, output shape(s) and parameter count; Inputs and
Outputs are ovals; each edge is labelled with its ports (``output → likelihoods``).
Learning-rate Inputs are orange diamonds, with dashed orange edges to the nodes whose
parameters they drive (labelled with those parameters); the loss Output is red and marked
"loss". The DOT text needs only the ``graphviz`` Python package (the ``draw`` extra); SVG and
PNG need Graphviz's ``dot`` program as well.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .errors import OptimusError
from .extras import MissingDependencyError, require
from .graph import Graph
from .serialize import atomic_write

FORMATS = ("dot", "gv", "svg", "png", "pdf")
LR_COLOR, LOSS_COLOR, PARAM_COLOR = "darkorange", "red3", "steelblue"
INSTALL_DOT = ("install Graphviz's dot program: apt-get install graphviz (Debian/Ubuntu), "
               "brew install graphviz (macOS), conda install graphviz; or write DOT text "
               "with a .dot file name")


def _shape(shape: Any) -> str:
    if shape is None:
        return "?"
    if shape == ():
        return "scalar"
    dims = ["N" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"


def _node_id(value: str, graph: Graph) -> str:
    """The drawing node of a value name: an Input or Output name, or the node owning a port
    or parameter (``conv.output`` -> ``conv``)."""
    if value in graph.inputs or value in graph.outputs:
        return value
    return value.split(".", 1)[0]


def to_dot(graph: Graph) -> Any:
    """The drawing as a ``graphviz.Digraph`` (its ``.source`` is the DOT text)."""
    graphviz = require("graphviz", "draw", "optimus.draw")
    dot = graphviz.Digraph(graph.name, graph_attr={"rankdir": "TB", "label": graph.name,
                                                   "labelloc": "t", "fontname": "Helvetica"},
                           node_attr={"fontname": "Helvetica", "fontsize": "11"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "9"})
    rates = set(graph.updates)
    for name, inp in graph.inputs.items():
        if name in rates:
            dot.node(name, f"{name}\nlearning rate", shape="diamond", color=LR_COLOR,
                     fontcolor=LR_COLOR, style="bold")
        else:
            dot.node(name, f"{name}\nInput {_shape(inp.shape)} {inp.dtype}", shape="ellipse")
    for node in graph.order:
        count = sum(math.prod(p.shape) for p in node.params.values())
        outs = ", ".join(f"{p.short_name} {_shape(graph.shapes.get(p.name))}"
                         if len(node.outputs) > 1 else _shape(graph.shapes.get(p.name))
                         for p in node.outputs.values())
        lines = [node.name, type(node).__name__, f"out: {outs}"]
        if node.params:
            lines.append(f"params: {count:,}")
        dot.node(node.name, "\n".join(lines), shape="box", style="rounded")
    for name in graph.outputs:
        if name == graph.loss:
            dot.node(name, f"{name}\nthe loss (minimised)", shape="doubleoctagon",
                     color=LOSS_COLOR, fontcolor=LOSS_COLOR, style="bold")
        else:
            dot.node(name, f"{name}\nOutput {_shape(graph.shapes.get(name))}", shape="ellipse",
                     style="filled", fillcolor="gray92")
    for source, sinks in graph.connections.items():
        tail = _node_id(source, graph)
        from_param = source in graph.params
        for sink in sinks:
            head = _node_id(sink, graph)
            left = source.split(".", 1)[1] if "." in source else ""
            right = sink.split(".", 1)[1] if "." in sink else ""
            label = " → ".join(part for part in (left, right) if part)
            attrs = {"color": PARAM_COLOR, "fontcolor": PARAM_COLOR} if from_param else {}
            if sink == graph.loss:
                attrs = {"color": LOSS_COLOR, "penwidth": "2"}
            dot.edge(tail, head, label=label, **attrs)
    for rate, params in graph.updates.items():
        by_node: dict[str, list[str]] = {}
        for param in params:
            by_node.setdefault(param.split(".", 1)[0], []).append(param.split(".", 1)[1])
        for node, names in by_node.items():
            dot.edge(rate, node, label=", ".join(names), style="dashed", color=LR_COLOR,
                     fontcolor=LR_COLOR, constraint="false")
    return dot


def draw(graph: Graph, path: str | os.PathLike, format: str | None = None) -> Path:
    """Draw ``graph`` to ``path``: DOT text for ``.dot``/``.gv`` (no program needed), or an
    image rendered by Graphviz's ``dot`` for ``.svg``, ``.png`` and ``.pdf``.

    Args:
        graph: the graph to draw.
        path: the file to write (atomically); its suffix picks the format.
        format: the format, overriding the suffix.

    Raises:
        OptimusError: the format is unknown.
        MissingDependencyError: the ``graphviz`` package, or for images the ``dot`` program,
            is missing; the message says how to install it.
    """
    path = Path(path)
    kind = (format or path.suffix.lstrip(".") or "dot").lower()
    if kind not in FORMATS:
        raise OptimusError(f"{path}: cannot draw to format {kind!r}; use one of "
                           f"{', '.join(FORMATS)}")
    dot = to_dot(graph)
    if kind in ("dot", "gv"):
        data = dot.source.encode("utf-8")
    else:
        graphviz = require("graphviz", "draw", "optimus.draw")
        try:
            data = dot.pipe(format=kind)
        except graphviz.ExecutableNotFound:
            raise MissingDependencyError(f"{path}: drawing {kind.upper()} needs Graphviz's "
                                         f"'dot' program, which is not on PATH; "
                                         f"{INSTALL_DOT}") from None
    atomic_write(path, lambda f: f.write(data))
    return path


__all__ = ["draw", "to_dot", "FORMATS"]
