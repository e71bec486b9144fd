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

from .compile import GraphModule, ReferenceEngine, Step, build_optimizer
from .connections import endpoint_name
from .errors import GraphError, InputError
from .fast import FastEngine, uncovered
from .nodes.base import Node
from .optim import SGD, StepRule
from .ports import DTYPES, Input, Output, Parameter, Shape

FLOAT_DTYPE = torch.float32
ENGINES = ("auto", "fast", "reference")
CHUNK_BYTES = 8 * 2**20  # activations per inference chunk when chunk_size="auto"


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
        device: where parameters live and computation runs ('cpu', 'cuda', 'mps'); the
            nodes' parameters are moved there (graphs sharing nodes share the device).
        engine: 'auto' (default) runs the fast path (`optimus.fast`: static plan, explicit
            backward, fused updates) when it covers every node, else the reference path;
            'fast' requires the fast path; 'reference' always uses the autograd path
            (`optimus.compile`). Both give the same numbers to float rounding.
        chunk_size: rows per chunk for calls without update: a prediction over many rows
            holds one chunk's activations at a time. 'auto' (default) picks a size from the
            graph's activation sizes when every node is known to treat rows independently;
            an int chunks any graph whose outputs all have a batch axis; None never chunks.
            Calls that take an update step are never chunked.

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
        params = self.params
        results = [self._source_of[out] for out in self.outputs]
        loss = None if self.loss is None else self._source_of[self.loss]
        self.module = GraphModule(steps, list(params.values()), results).to(self.device)
        optimizer = build_optimizer(self.step_rule, self._groups)
        self.engine: FastEngine | ReferenceEngine = ReferenceEngine(self.module, loss, optimizer)
        missing = uncovered(steps, self.shapes)
        if missing and self._engine_choice == "fast":
            raise self._error(
                f"engine='fast' does not cover node{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; use engine='auto' to run this graph on the "
                f"reference path")
        if not missing and self._engine_choice != "reference":
            self.engine = FastEngine(steps, self.shapes, list(self.inputs), params, results,
                                     loss, optimizer)
        # The engine that takes update steps (the Driver trains graphs that have one).
        self.trainer = self.engine if optimizer is not None else None
        self._plan_calls(rowwise=not missing)

    def _plan_calls(self, rowwise: bool) -> None:
        """Precompute what a call needs: input specs, output sources, chunking."""
        used = self.engine.used_inputs
        self._specs = {}
        for name, spec in self.inputs.items():
            dtype = DTYPES[spec.dtype]
            dtype = FLOAT_DTYPE if dtype.is_floating_point else dtype
            np_dtype = np.dtype(str(dtype).removeprefix("torch."))
            convert = used is None or name in used
            fixed = tuple((axis, d) for axis, d in enumerate(spec.shape) if d is not None)
            self._specs[name] = (spec.shape, dtype, np_dtype, convert, fixed)
        self._on_cpu = self.device.type == "cpu"
        self._results = [(out, self._source_of[out]) for out in self.outputs]
        self._chunk_rows = self._chunk_rows_for(rowwise)

    def _chunk_rows_for(self, rowwise: bool) -> int | None:
        """Rows per inference chunk, or None when calls must not be chunked."""
        batched = [n for n, i in self.inputs.items() if i.shape and i.shape[0] is None]
        fixed = [n for n, i in self.inputs.items() if i.shape and i.shape[0] is not None]
        if self.chunk_size is None or not batched or fixed:
            return None
        if any(not self.shapes[src] or self.shapes[src][0] is not None
               for _, src in self._results):
            return None  # an output without a batch axis (a loss) needs the whole batch
        if self.chunk_size != "auto":
            return int(self.chunk_size)
        # Values that depend on the batch must keep it as their first axis (no reduction
        # over rows), and every node must be one the fast path knows to be row-wise.
        depends = set(batched)
        row_bytes = sum(4 * int(np.prod(self.inputs[n].shape[1:])) for n in batched)
        for node in self.order:
            if not any(self._source_of[p.name] in depends for p in node.inputs.values()):
                continue
            for port in node.outputs.values():
                shape = self.shapes[port.name]
                if not shape or shape[0] is not None or None in shape[1:]:
                    return None
                depends.add(port.name)
                row_bytes += 4 * int(np.prod(shape[1:]))
        if not rowwise:
            return None
        return max(64, CHUNK_BYTES // max(row_bytes, 1))

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

    def _tensor(self, name: str, value: Any) -> torch.Tensor | None:
        """Check one input against its Input and convert it (zero-copy from NumPy when the
        dtype matches); None for an input only used as a learning rate, once checked."""
        shape, dtype, np_dtype, convert, fixed = self._specs[name]
        if not convert and type(value) is float and shape == ():
            return None  # a learning rate given as a Python float: nothing to check
        array = value if isinstance(value, (np.ndarray, torch.Tensor)) else np.asarray(value)
        dims = array.shape
        if shape == () and len(dims) != 0:
            raise InputError(f"Graph '{self.name}': input '{name}' is a scalar, got an array of "
                             f"shape {tuple(dims)}")
        if len(dims) != len(shape) or any(dims[axis] != d for axis, d in fixed):
            raise InputError(f"Graph '{self.name}': input '{name}' expects shape {shape}, "
                             f"got {tuple(dims)}")
        if isinstance(array, torch.Tensor):
            return array.to(device=self.device, dtype=dtype) if convert else None
        if array.dtype.kind not in "biuf":
            raise InputError(f"Graph '{self.name}': input '{name}' must be numeric, got "
                             f"dtype {array.dtype}")
        if not convert:
            return None
        if array.dtype != np_dtype:
            tensor = torch.from_numpy(array.astype(np_dtype, order="C"))
        elif array.flags.c_contiguous and array.flags.writeable:
            tensor = torch.from_numpy(array)
        else:
            tensor = _readonly_tensor(np.ascontiguousarray(array))
        return tensor if self._on_cpu else tensor.to(self.device)

    def __call__(self, **arrays: Any) -> OrderedDict[str, np.ndarray]:
        """Run the graph on keyword arrays, one per Input; returns ``{output: array}``.

        If the graph has a loss and updates and some learning-rate Input is non-zero, the call
        also takes one update step; the outputs are those computed before the step. A call
        without update over more rows than the graph's chunk size runs chunk by chunk.

        Raises:
            InputError: an Input is missing, unknown, or has the wrong shape.
        """
        if arrays.keys() != self._specs.keys():
            missing = [n for n in self.inputs if n not in arrays]
            unknown = [n for n in arrays if n not in self.inputs]
            parts = []
            if missing:
                parts.append(f"missing inputs {', '.join(map(repr, missing))}")
            if unknown:
                parts.append(f"unknown inputs {', '.join(map(repr, unknown))}"
                             f" (it takes {', '.join(map(repr, self.inputs))})")
            raise InputError(f"Graph '{self.name}': {'; '.join(parts)}")
        tensors = {n: self._tensor(n, v) for n, v in arrays.items()}
        if self.trainer is not None:
            rates = {n: float(arrays[n]) for n in self._groups}
            if any(rates.values()):
                values = self.engine.train(tensors, rates)
                return OrderedDict((out, _to_numpy(values[src])) for out, src in self._results)
        rows = self._chunk_rows
        if rows is not None:
            n = _batch_rows(tensors, self.inputs)
            if n is not None and n > rows:
                return self._infer_chunked(tensors, n, rows)
        values = self.engine.infer(tensors)
        return OrderedDict((out, _to_numpy(values[src])) for out, src in self._results)

    def _infer_chunked(self, tensors: dict[str, torch.Tensor | None], n: int, rows: int
                       ) -> OrderedDict[str, np.ndarray]:
        """Inference ``rows`` at a time; results are written into arrays of ``n`` rows."""
        batched = [k for k, t in tensors.items() if t is not None and self.inputs[k].shape]
        outputs: OrderedDict[str, np.ndarray] = OrderedDict()
        for start in range(0, n, rows):
            part = dict(tensors)
            for k in batched:
                part[k] = tensors[k][start:start + rows]
            values = self.engine.infer(part)
            for out, src in self._results:
                chunk = _to_numpy(values[src])
                if out not in outputs:
                    outputs[out] = np.empty((n, *chunk.shape[1:]), dtype=chunk.dtype)
                outputs[out][start:start + len(chunk)] = chunk
        return outputs

    def __repr__(self) -> str:
        return (f"Graph(name={self.name!r}, inputs={list(self.inputs)}, "
                f"nodes={list(self.nodes)}, outputs={list(self.outputs)})")


_readonly_warned = False  # torch warns once per process about read-only NumPy memory


def _readonly_tensor(array: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor over a read-only array (optimus never writes to its inputs); torch's
    one-time warning about it is silenced, then never comes again, so later calls skip the
    (costly) warning filter."""
    global _readonly_warned
    if _readonly_warned:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(array)
    _readonly_warned = True
    return tensor


def _batch_rows(tensors: Mapping[str, torch.Tensor | None], inputs: Mapping[str, Input]
                ) -> int | None:
    """The common row count of the batched inputs, None if they disagree."""
    rows = {t.shape[0] for k, t in tensors.items() if t is not None and inputs[k].shape}
    return rows.pop() if len(rows) == 1 else None


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    # Engines hand out no live parameter (they clone those); an input passed as a tensor that
    # requires grad may come straight back.
    if tensor.requires_grad:
        tensor = tensor.detach()
    return tensor.numpy() if tensor.device.type == "cpu" else tensor.cpu().numpy()
