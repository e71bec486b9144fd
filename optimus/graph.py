"""`Graph`: wires inputs, nodes and outputs, checks the wiring, and runs it.

``Graph.__init__`` resolves the connection map into ports and validates it with the pure
checks of `optimus.wiring` (every name exists, one source per sink, no cycle, every input port
fed, loss and update targets exist), which also order the nodes and propagate shapes; then it
builds the engine that runs calls (`optimus.fast.FastEngine`, or the reference
`optimus.compile.ReferenceEngine`). Calling a graph with keyword arrays (converted by
`optimus.inputs`) returns its outputs as NumPy arrays and, when it has a loss and updates and a
non-zero learning rate, takes one update step; large calls without update are chunked
(`optimus.chunking`).
"""
from __future__ import annotations

import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from . import chunking, devices, wiring
from .compile import GraphModule, ReferenceEngine, Step, build_optimizer
from .connections import endpoint_name
from .errors import GraphError, InputError
from .fast import FastEngine
from .inputs import check_names, check_rows, index_bounds, input_specs, to_numpy, to_tensor
from .nodes.base import Node
from .optim import SGD, StepRule
from .ports import Input, Output, Parameter

ENGINES = ("auto", "fast", "reference")
logger = logging.getLogger(__name__)  # "optimus.graph": which nodes fall back, and why


class Graph:
    """A named, validated network of nodes that can be called, trained, saved and loaded.

    Args:
        name: the graph's name, used in every error message about it.
        inputs: the `Input` objects a call takes, by name.
        nodes: the processing nodes.
        connections: ``{source: [sink, ...]}``, e.g. from `ConnectionManager.connections`.
        outputs: the `Output` objects a call returns, in this order.
        loss: the `Output` (or its name) to minimise; needs ``updates``.
        updates: ``{learning-rate input: [parameter, ...]}``: parameters to train and the
            scalar Input scaling each one's step. Parameters not listed never move.
        step_rule: how gradients become updates (default: plain SGD).
        device: where parameters live and computation runs ('cpu', 'cuda', 'mps'); the
            nodes' parameters are moved there. Graphs that share nodes share their
            parameters, so they must use the same device: building a graph on another device
            than a live graph sharing its nodes raises `GraphError` (see `optimus.devices`).
        engine: 'auto' (default) runs the fast engine (`optimus.fast`: static plan, explicit
            backward, fused updates): each node on its fast kernel, and a node without one
            (a Dropout, BatchNorm, a port-fed penalty, your own `Node` subclass) through
            autograd inside the same plan; which, and why, is in `engines` and
            `engine_reasons`, and logged once at INFO level on the ``optimus`` logger.
            'fast' requires a kernel for every node (else `GraphError` naming the nodes and
            reasons); 'reference' runs every node through autograd (`optimus.compile`). All
            give the same numbers to float rounding.
        chunk_size: rows per chunk for calls without update: a prediction over many rows
            holds one chunk's activations at a time. 'auto' (default) picks a size from the
            graph's activation sizes (on the CPU about 8 MB of them a chunk, but 256 rows
            where those stay within 32 MB; on a GPU about 1 GiB; never under 64 rows) when
            every node reading batch-dependent values declares itself row-wise
            (`Node.rowwise`); an int chunks any graph whose outputs all have a batch axis;
            None never chunks. Calls that take an update step are never chunked.

    Attributes:
        engine_choice: the ``engine`` option ('auto', 'fast' or 'reference').
        device: the ``device`` option as a `torch.device`.
        chunk_size: the ``chunk_size`` option (an int, 'auto' or None).
        engines: ``{node name: 'fast' | 'autograd'}``, what runs each node.
        engine_reasons: ``{node name: reason}`` for the nodes not on a fast kernel.
        order: the nodes in execution order.
        shapes, dtypes: the static shape and dtype of every value name.

    Raises:
        GraphError: the wiring is invalid; the message names the graph, node and port.
    """

    def __init__(self, name: str, inputs: Sequence[Input], nodes: Sequence[Node],
                 connections: Mapping[str, Sequence[Any]], outputs: Sequence[Output],
                 loss: Output | str | None = None,
                 updates: Mapping[str, Sequence[Any]] | None = None,
                 step_rule: StepRule | None = None, device: str | torch.device | None = None,
                 engine: str = "auto", chunk_size: int | str | None = "auto"):
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
        self.device = self._check_device(device)
        if engine not in ENGINES:
            raise self._error(f"engine={engine!r} is unknown; use one of "
                              f"{', '.join(map(repr, ENGINES))}")
        if not (chunk_size is None or chunk_size == "auto" or (
                isinstance(chunk_size, (int, np.integer)) and not isinstance(chunk_size, bool)
                and chunk_size > 0)):
            raise self._error(f"chunk_size must be a positive int, 'auto' or None, got "
                              f"{chunk_size!r}")
        self.chunk_size = chunk_size
        self._engine_choice = engine

        self._wire()
        self._compile()

    # -- wiring -----------------------------------------------------------------------------
    def _error(self, message: str) -> GraphError:
        return wiring.error(self.name, message)

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

    def _wire(self) -> None:
        """Run the wiring checks (`optimus.wiring`) and keep what they derive."""
        name, params = self.name, self.params
        self._source_of = wiring.resolve_connections(name, self.connections, self.inputs,
                                                     self.nodes, self.outputs)
        self.order = wiring.topological_order(name, self.nodes, self._source_of, params)
        self.shapes, self.dtypes = wiring.propagate_shapes(name, self.inputs, params, self.order,
                                                           self.outputs, self._source_of)
        self._groups = wiring.resolve_updates(name, self.updates, self.loss, self.inputs,
                                              self.outputs, self.shapes, params)
        wiring.check_inputs_used(name, self.inputs, self._source_of, self.updates)

    def _compile(self) -> None:
        steps = []
        for node in self.order:
            sources = tuple((p.short_name, self._source_of[p.name]) for p in node.inputs.values())
            targets = tuple((p.short_name, p.name) for p in node.outputs.values())
            steps.append(Step(node, sources, targets))
        params = self.params
        results = [self._source_of[out] for out in self.outputs]
        loss = None if self.loss is None else self._source_of[self.loss]
        devices.place(self, params, self.device)
        self.module = GraphModule(steps, list(params.values()), results).to(self.device)
        optimizer = build_optimizer(self.step_rule, self._groups)
        self.engine: FastEngine | ReferenceEngine
        if self._engine_choice == "reference":
            self.engine = ReferenceEngine(self.module, loss, optimizer)
            self._reasons = {name: "engine='reference'" for name in self.nodes}
        else:
            self.engine = FastEngine(steps, self.shapes, list(self.inputs), params, results,
                                     loss, optimizer)
            self._reasons = dict(self.engine.reasons)
            if self._reasons and self._engine_choice == "fast":
                raise self._error(
                    f"engine='fast' has no kernel for node{'s' if len(self._reasons) > 1 else ''}"
                    f" {self._describe_reasons()}; use engine='auto' to run "
                    f"{'them' if len(self._reasons) > 1 else 'it'} through autograd inside the "
                    f"fast engine")
            if self._reasons:
                logger.info("Graph '%s': %s run%s through autograd inside the fast engine",
                            self.name, self._describe_reasons(),
                            "" if len(self._reasons) > 1 else "s")
        # The engine that takes update steps (the Driver trains graphs that have one).
        self.trainer = self.engine if optimizer is not None else None
        self._plan_calls()

    def _describe_reasons(self) -> str:
        return ", ".join(f"'{name}' ({type(self.nodes[name]).__name__}: {reason})"
                         for name, reason in self._reasons.items())

    # -- engines ------------------------------------------------------------------------------
    @property
    def engine_choice(self) -> str:
        """The ``engine`` option the graph was built with: 'auto', 'fast' or 'reference'."""
        return self._engine_choice

    @property
    def engines(self) -> dict[str, str]:
        """``{node name: 'fast' | 'autograd'}``: what runs each node. 'fast' is the node's
        registered kernel; 'autograd' its own forward differentiated by autograd (inside the
        fast engine, or every node with ``engine='reference'``)."""
        return {name: "autograd" if name in self._reasons else "fast" for name in self.nodes}

    @property
    def engine_reasons(self) -> dict[str, str]:
        """``{node name: reason}`` for the nodes that do not run on a fast kernel (all of them,
        with reason "engine='reference'", on the reference engine)."""
        return dict(self._reasons)

    def _plan_calls(self) -> None:
        """Precompute what a call needs: input specs, output sources, chunking."""
        bounds = index_bounds(self.inputs, self.order, self._source_of, self.shapes)
        self._specs = input_specs(self.inputs, self.engine.used_inputs, bounds)
        self._batched = tuple(name for name, spec in self.inputs.items()
                              if spec.shape[:1] == (None,))
        self._needs = self._training_rows()
        self._to_device = None if self.device.type == "cpu" else self.device
        self._results = [(out, self._source_of[out]) for out in self.outputs]
        self._chunk_rows = chunking.chunk_rows(self.chunk_size, self.inputs, self.order,
                                               self._source_of, self.shapes,
                                               [src for _, src in self._results],
                                               self.device)

    def _training_rows(self) -> tuple[int, str] | None:
        """``(rows, what)``: the most batch rows a node needs in a training call, and the node
        (None when every node makes do with one row)."""
        most = None
        for node in self.order:
            shapes = {p.short_name: self.shapes.get(self._source_of[p.name])
                      for p in node.inputs.values()}
            rows = node.training_rows(shapes)
            if rows > 1 and (most is None or rows > most[0]):
                most = (rows, f"node '{node.name}' ({type(node).__name__}, batch statistics)")
        return most

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
    def _check_device(self, device: str | torch.device | None) -> torch.device:
        try:
            device = torch.device(device) if device is not None else torch.device("cpu")
        except (RuntimeError, TypeError) as err:
            raise self._error(f"device={device!r} is not a torch device ({err}); use 'cpu', "
                              f"'cuda' or 'mps'") from None
        available = {"cuda": torch.cuda.is_available,
                     "mps": lambda: torch.backends.mps.is_available()}.get(device.type)
        if available is not None and not available():
            raise self._error(f"device '{device}' is not available on this machine; use "
                              f"device='cpu'")
        return device

    def __call__(self, **arrays: Any) -> OrderedDict[str, np.ndarray]:
        """Run the graph on keyword arrays, one per Input; returns ``{output: array}``.

        If the graph has a loss and updates and some learning-rate Input is non-zero, the call
        also takes one update step; the outputs are those computed before the step. A call
        without update over more rows than the graph's chunk size runs chunk by chunk.

        Raises:
            InputError: an Input is missing, unknown, or has the wrong shape; integer values
                that do not convert exactly or index outside their axis (class labels);
                batched inputs whose row counts differ; a learning rate that is not finite;
                a training call with no rows, or fewer than a node needs (`BatchNorm`).
        """
        specs = self._specs
        if arrays.keys() != specs.keys():
            check_names(self.name, arrays, self.inputs)
        name, device = self.name, self._to_device
        tensors = {n: to_tensor(name, n, v, specs[n], device) for n, v in arrays.items()}
        training = False
        if self.trainer is not None:
            rates = {n: float(arrays[n]) for n in self._groups}
            training = any(rates.values())
            if training and not all(map(math.isfinite, rates.values())):
                bad = [f"'{n}' = {r}" for n, r in rates.items() if not math.isfinite(r)]
                raise InputError(f"Graph '{name}': learning rate {', '.join(bad)} is not "
                                 f"finite; no step was taken")
        if self._batched:
            check_rows(name, tensors, self._batched, training, self._needs)
        if training:
            values = self.engine.train(tensors, rates)
            return OrderedDict((out, to_numpy(values[src])) for out, src in self._results)
        rows = self._chunk_rows
        if rows is not None:
            n = chunking.batch_rows(tensors, self.inputs)
            if n is not None and n > rows:
                return chunking.infer_chunked(self.engine.infer, tensors, self.inputs,
                                              self._results, n, rows)
        values = self.engine.infer(tensors)
        return OrderedDict((out, to_numpy(values[src])) for out, src in self._results)

    def __repr__(self) -> str:
        return (f"Graph(name={self.name!r}, inputs={list(self.inputs)}, "
                f"nodes={list(self.nodes)}, outputs={list(self.outputs)})")
