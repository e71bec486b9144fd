"""`Graph`: wires inputs, nodes and outputs, checks the wiring, and runs it.

``Graph.__init__`` resolves the connection map into ports, validates it (every name exists, one
source per sink, no cycle, every input port fed, loss and update targets exist), orders the
nodes, propagates shapes and compiles the result to PyTorch. Calling a graph with keyword
arrays returns its outputs as NumPy arrays and, when it has a loss and updates and a non-zero
learning rate, takes one update step.
"""
from __future__ import annotations

import difflib
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .compile import GraphModule, Step, Trainer
from .connections import endpoint_name
from .errors import GraphError, InputError
from .nodes.base import Node
from .optim import SGD, StepRule
from .ports import DTYPES, Input, Output, Parameter, Shape

FLOAT_DTYPE = torch.float32


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


class Graph:
    """A named, validated network of nodes that can be called, trained, saved and loaded.

    Args:
        name: the graph's name, used in every error message about it.
        inputs: the `Input`s a call takes, by name.
        nodes: the processing nodes.
        connections: ``{source: [sink, ...]}``, e.g. from `ConnectionManager.connections`.
        outputs: the `Output`s a call returns, in this order.
        loss: the `Output` (or its name) to minimise; needs ``updates``.
        updates: ``{learning-rate input: [parameter, ...]}``: parameters to train and the
            scalar Input scaling each one's step. Parameters not listed never move.
        step_rule: how gradients become updates (default: plain SGD).
        device: where parameters live and computation runs ('cpu', 'cuda', 'mps').

    Raises:
        GraphError: the wiring is invalid; the message names the graph, node and port.
    """

    def __init__(self, name: str, inputs: Sequence[Input], nodes: Sequence[Node],
                 connections: Mapping[str, Sequence[Any]], outputs: Sequence[Output],
                 loss: Output | str | None = None,
                 updates: Mapping[str, Sequence[Any]] | None = None,
                 step_rule: StepRule | None = None, device: str | torch.device | None = None):
        if not isinstance(name, str) or not name:
            raise GraphError(f"a Graph needs a non-empty string name, got {name!r}")
        self.name = name
        self.inputs: OrderedDict[str, Input] = self._index(inputs, Input, "inputs")
        self.nodes: OrderedDict[str, Node] = self._index(nodes, Node, "nodes")
        self.outputs: OrderedDict[str, Output] = self._index(outputs, Output, "outputs")
        self._check_unique_names()
        self.connections = {endpoint_name(src): [endpoint_name(s) for s in sinks]
                            for src, sinks in connections.items()}
        self.loss = None if loss is None else endpoint_name(loss)
        self.updates = {endpoint_name(src): [endpoint_name(p) for p in params]
                        for src, params in (updates or {}).items()}
        self.step_rule = step_rule if step_rule is not None else SGD()
        self.device = torch.device(device) if device is not None else torch.device("cpu")

        self._source_of = self._resolve_connections()
        self.order = self._topological_order()
        self.shapes, self.dtypes = self._propagate_shapes()
        self._groups = self._resolve_updates()
        self._check_inputs_used()
        self._compile()

    # -- wiring -----------------------------------------------------------------------------
    def _error(self, message: str) -> GraphError:
        return GraphError(f"Graph '{self.name}': {message}")

    def _index(self, items: Sequence[Any], kind: type, field: str) -> OrderedDict:
        index: OrderedDict[str, Any] = OrderedDict()
        for i, item in enumerate(items or ()):
            if not isinstance(item, kind):
                raise self._error(f"{field}[{i}] must be {kind.__name__}, got {item!r}")
            if item.name in index:
                raise self._error(f"two {field} are named '{item.name}'; names must be unique")
            index[item.name] = item
        return index

    def _check_unique_names(self) -> None:
        seen: dict[str, str] = {}
        for kind, names in (("input", self.inputs), ("node", self.nodes),
                            ("output", self.outputs)):
            for name in names:
                if name in seen:
                    raise self._error(f"the name '{name}' is used by an {seen[name]} and a "
                                      f"{kind}; rename one of them")
                seen[name] = kind

    def _sources(self) -> dict[str, tuple[Shape | None, str]]:
        """Every name that may appear on the left of a connection."""
        names = {name: (inp.shape, inp.dtype) for name, inp in self.inputs.items()}
        for node in self.nodes.values():
            for port in node.outputs.values():
                names[port.name] = (None, "")
            for param in node.params.values():  # e.g. weights fed to a weight-decay penalty
                names[param.name] = (param.shape, "float32")
        return names

    def _sinks(self) -> set[str]:
        names = set(self.outputs)
        for node in self.nodes.values():
            names.update(port.name for port in node.inputs.values())
        return names

    def _resolve_connections(self) -> dict[str, str]:
        """``{sink: source}``, checking names and that no sink has two sources."""
        sources, sinks = self._sources(), self._sinks()
        source_of: dict[str, str] = {}
        for src, targets in self.connections.items():
            if src not in sources:
                if src in sinks:
                    raise self._error(f"'{src}' is used as a source but it is an input port or "
                                      f"Output; connect a node output or Input to it instead")
                raise self._error(f"connection source '{src}' is not an Input or node output of "
                                  f"this graph.{_suggest(src, sources)}")
            for sink in targets:
                if sink not in sinks:
                    hint = (" It is a source; sinks are node input ports and Outputs."
                            if sink in sources else _suggest(sink, sinks))
                    raise self._error(f"connection sink '{sink}' (from '{src}') is not a node "
                                      f"input port or Output of this graph.{hint}")
                if sink in source_of:
                    raise self._error(f"port '{sink}' has two sources, '{source_of[sink]}' and "
                                      f"'{src}'; a port takes exactly one source")
                source_of[sink] = src
        for node in self.nodes.values():
            for port in node.inputs.values():
                if port.name not in source_of:
                    raise self._error(f"port '{port.name}' has no source; connect it or remove "
                                      f"node '{node.name}'")
        for out in self.outputs:
            if out not in source_of:
                raise self._error(f"Output '{out}' has no source; connect a node output to it "
                                  f"or remove it from outputs")
        return source_of

    def _check_inputs_used(self) -> None:
        used = set(self._source_of.values())
        for name in self.inputs:
            if name not in used and name not in self.updates:
                raise self._error(f"Input '{name}' is not connected to anything; connect it or "
                                  f"remove it from inputs")

    def _topological_order(self) -> list[Node]:
        """Nodes ordered so that each comes after the nodes feeding it (Kahn's algorithm)."""
        deps = {name: set() for name in self.nodes}
        for node in self.nodes.values():
            for port in node.inputs.values():
                src = self._source_of[port.name]
                if "." in src and src.split(".")[0] != node.name:
                    deps[node.name].add(src.split(".")[0])
                elif src.split(".")[0] == node.name and src not in self.params:
                    deps[node.name].add(node.name)  # a node feeding itself: a cycle
        order, ready = [], [n for n in self.nodes if not deps[n]]
        while ready:
            name = ready.pop(0)
            order.append(self.nodes[name])
            for other, needs in deps.items():
                if name in needs:
                    needs.discard(name)
                    if not needs and other not in ready and self.nodes[other] not in order:
                        ready.append(other)
        if len(order) != len(self.nodes):
            stuck = [n for n in self.nodes if self.nodes[n] not in order]
            raise self._error(f"the connections form a cycle through nodes "
                              f"{', '.join(map(repr, stuck))}; a graph must be acyclic")
        return order

    def _propagate_shapes(self) -> tuple[dict[str, Shape], dict[str, str]]:
        shapes = {name: inp.shape for name, inp in self.inputs.items()}
        # float inputs are computed in float32, whatever dtype the caller passes
        dtypes = {name: "float32" if DTYPES[inp.dtype].is_floating_point else inp.dtype
                  for name, inp in self.inputs.items()}
        for name, param in self.params.items():
            shapes[name], dtypes[name] = param.shape, "float32"
        for node in self.order:
            in_shapes, in_dtypes = {}, {}
            for port in node.inputs.values():
                src = self._source_of[port.name]
                shape = shapes[src]
                if not node.accepts(port.short_name, shape):
                    raise self._error(
                        f"port '{port.name}' expects shape {port.shape} but its source '{src}' "
                        f"has shape {shape}; fix the node's input_shape or the connection")
                in_shapes[port.short_name] = shape
                in_dtypes[port.short_name] = dtypes[src]
            try:
                inferred = node.infer(in_shapes, in_dtypes)
            except ValueError as err:
                raise self._error(str(err)) from None
            for port in node.outputs.values():
                shapes[port.name], dtypes[port.name] = inferred[port.short_name]
        for out in self.outputs:
            shapes[out] = shapes[self._source_of[out]]
            dtypes[out] = dtypes[self._source_of[out]]
        return shapes, dtypes

    def _resolve_updates(self) -> dict[str, list[Parameter]]:
        if self.updates and self.loss is None:
            raise self._error("updates are given but no loss; pass loss=<an Output>")
        if self.loss is not None:
            if self.loss not in self.outputs:
                raise self._error(f"loss '{self.loss}' is not one of the outputs "
                                  f"{list(self.outputs)}; add it to outputs")
            if self.shapes[self.loss] != ():
                raise self._error(f"loss '{self.loss}' must be a scalar but has shape "
                                  f"{self.shapes[self.loss]}; connect a loss node's output")
        params = self.params
        groups: dict[str, list[Parameter]] = {}
        owner: dict[str, str] = {}
        for src, targets in self.updates.items():
            if src not in self.inputs:
                raise self._error(f"update source '{src}' is not an Input of this graph."
                                  f"{_suggest(src, self.inputs)}")
            if self.inputs[src].shape != ():
                raise self._error(f"learning-rate Input '{src}' must be a scalar (shape=None)")
            groups[src] = []
            for name in targets:
                if name not in params:
                    raise self._error(f"update target '{name}' (from '{src}') is not a parameter "
                                      f"of this graph's nodes.{_suggest(name, params)}")
                if name in owner:
                    raise self._error(f"parameter '{name}' is updated by both '{owner[name]}' "
                                      f"and '{src}'; give it one learning rate")
                if not params[name].trainable:
                    raise self._error(f"parameter '{name}' is not trainable")
                owner[name] = src
                groups[src].append(params[name])
        return groups

    def _compile(self) -> None:
        steps = []
        for node in self.order:
            sources = tuple((p.short_name, self._source_of[p.name]) for p in node.inputs.values())
            targets = tuple((p.short_name, p.name) for p in node.outputs.values())
            steps.append(Step(node, sources, targets))
        results = [self._source_of[out] for out in self.outputs]
        self.module = GraphModule(steps, list(self.params.values()), results).to(self.device)
        self.trainer = (Trainer(self.module, self._source_of[self.loss], self._groups,
                                self.step_rule) if self._groups else None)

    # -- parameters ---------------------------------------------------------------------------
    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The torch optimizer taking this graph's update steps (its state is checkpointed);
        None for a graph without updates."""
        return None if self.trainer is None else self.trainer.optimizer

    @property
    def params(self) -> OrderedDict[str, Parameter]:
        """Every node parameter, keyed ``'{node}.{param}'``."""
        return OrderedDict((p.name, p) for node in self.nodes.values()
                           for p in node.params.values())

    @property
    def param_values(self) -> OrderedDict[str, np.ndarray]:
        """``{'{node}.{param}': array}`` copies of all parameter values."""
        return OrderedDict((name, p.value) for name, p in self.params.items())

    @param_values.setter
    def param_values(self, values: Mapping[str, Any]) -> None:
        params = self.params
        unknown = [key for key in values.keys() if key not in params]
        if unknown:
            warnings.warn(f"Graph '{self.name}': skipped unknown parameters "
                          f"{', '.join(map(repr, unknown))}", stacklevel=2)
        for key in values.keys():
            if key in params:
                params[key].value = values[key]

    # -- calling ------------------------------------------------------------------------------
    def _tensor(self, name: str, value: Any) -> torch.Tensor:
        spec = self.inputs[name]
        array = value if isinstance(value, torch.Tensor) else np.asarray(value)
        if spec.shape == () and array.ndim != 0:
            raise InputError(f"Graph '{self.name}': input '{name}' is a scalar, got an array of "
                             f"shape {tuple(array.shape)}")
        if spec.shape != () and (len(array.shape) != len(spec.shape) or any(
                d is not None and d != a for d, a in zip(spec.shape, array.shape))):
            raise InputError(f"Graph '{self.name}': input '{name}' expects shape {spec.shape}, "
                             f"got {tuple(array.shape)}")
        dtype = DTYPES[spec.dtype]
        if dtype.is_floating_point:
            dtype = FLOAT_DTYPE
        if isinstance(array, np.ndarray):
            if array.dtype.kind not in "biuf":
                raise InputError(f"Graph '{self.name}': input '{name}' must be numeric, got "
                                 f"dtype {array.dtype}")
            array = np.ascontiguousarray(array)
            if array.flags.writeable:
                array = torch.from_numpy(array)
            else:  # zero-copy is safe: optimus never writes to its inputs
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    array = torch.from_numpy(array)
        return array.to(device=self.device, dtype=dtype)

    def __call__(self, **arrays: Any) -> OrderedDict[str, np.ndarray]:
        """Run the graph on keyword arrays, one per Input; returns ``{output: array}``.

        If the graph has a loss and updates and some learning-rate Input is non-zero, the call
        also takes one update step; the outputs are those computed before the step.

        Raises:
            InputError: an Input is missing, unknown, or has the wrong shape.
        """
        missing = [n for n in self.inputs if n not in arrays]
        unknown = [n for n in arrays if n not in self.inputs]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing inputs {', '.join(map(repr, missing))}")
            if unknown:
                parts.append(f"unknown inputs {', '.join(map(repr, unknown))}"
                             f" (it takes {', '.join(map(repr, self.inputs))})")
            raise InputError(f"Graph '{self.name}': {'; '.join(parts)}")
        tensors = {n: self._tensor(n, v) for n, v in arrays.items()}
        rates = {n: float(tensors[n]) for n in self._groups}
        if self.trainer is not None and any(rates.values()):
            values = self.trainer.step(tensors, rates)
        else:
            with torch.no_grad():
                values = self.module(tensors, training=False)
        return OrderedDict((out, self._to_numpy(self._source_of[out], values))
                           for out in self.outputs)

    def _to_numpy(self, source: str, values: Mapping[str, torch.Tensor]) -> np.ndarray:
        tensor = values[source].detach()
        if source in self.params:  # never hand out a view of a live parameter
            tensor = tensor.clone()
        return tensor.cpu().numpy()

    def __repr__(self) -> str:
        return (f"Graph(name={self.name!r}, inputs={list(self.inputs)}, "
                f"nodes={list(self.nodes)}, outputs={list(self.outputs)})")
