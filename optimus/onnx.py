"""ONNX export: a graph's inference computation as an ONNX model that ONNX Runtime serves.

`export_onnx` traces the nodes that the chosen outputs depend on, in evaluation mode (no
update, Dropout and noise off, BatchNorm on its running statistics), through PyTorch's
``torch.export``-based ONNX exporter (``torch.onnx.export(..., dynamo=True)``, opset 18), with
the graph's own Input and Output names and a dynamic batch axis wherever an Input declares
``None``. Parameters become initializers (their current values). Requires the ``onnx`` extra.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import OptimusError
from .extras import require
from .graph import Graph
from .nodes.base import Node

OPSET = 18
EXAMPLE_BATCH = 3  # the batch size traced: any size >= 2 (0 and 1 would be specialised)
_QUIET_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")


class ExportError(OptimusError, ValueError):
    """A graph (or one of its nodes) cannot be expressed in ONNX; the message names the
    node and the exporter's reason."""


@dataclass(frozen=True)
class OnnxSignature:
    """What an exported model takes and returns: ONNX input and output names, in order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class _Call:
    node: Node
    sources: tuple[tuple[str, str], ...]  # (input port, value name)
    targets: tuple[tuple[str, str], ...]  # (output port, value name)


class _Inference(torch.nn.Module):
    """The chosen part of a graph as a module: positional inputs in, a tuple of outputs out."""

    def __init__(self, calls: Sequence[_Call], inputs: Sequence[str], results: Sequence[str],
                 params: dict[str, torch.Tensor]):
        super().__init__()
        self.calls, self.input_names, self.results = tuple(calls), tuple(inputs), tuple(results)
        self.param_names = tuple(params)
        for index, tensor in enumerate(params.values()):
            self.register_buffer(f"p{index}", tensor.detach().to("cpu", copy=True))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = dict(zip(self.input_names, inputs))
        values.update((name, getattr(self, f"p{i}")) for i, name in enumerate(self.param_names))
        for call in self.calls:
            args = {port: values[name] for port, name in call.sources}
            params = {short: values[f"{call.node.name}.{short}"] for short in call.node.params}
            out = call.node.outputs_of(args, params, training=False)
            for port, name in call.targets:
                values[name] = out[port]
        results, seen = [], set()
        for name in self.results:
            tensor = values[name]
            # Each ONNX output needs a value of its own: copy an input, a parameter or a
            # value already returned under another name.
            if name in self.input_names or name in self.param_names or id(tensor) in seen:
                tensor = tensor.clone()
            seen.add(id(tensor))
            results.append(tensor)
        return tuple(results)


def _plan(graph: Graph, outputs: Sequence[str]) -> tuple[list[_Call], list[str], list[str]]:
    """The node calls, Inputs and result values that ``outputs`` depend on, in order."""
    source_of = {sink: src for src, sinks in graph.connections.items() for sink in sinks}
    needed_nodes: set[str] = set()
    needed_inputs: set[str] = set()
    stack = [source_of[out] for out in outputs]
    while stack:
        value = stack.pop()
        if value in graph.inputs:
            needed_inputs.add(value)
            continue
        node_name = value.split(".", 1)[0]
        if value in graph.params or node_name in needed_nodes:
            continue
        needed_nodes.add(node_name)
        stack.extend(source_of[port.name] for port in graph.nodes[node_name].inputs.values())
    calls = [_Call(node, tuple((p.short_name, source_of[p.name]) for p in node.inputs.values()),
                   tuple((p.short_name, p.name) for p in node.outputs.values()))
             for node in graph.order if node.name in needed_nodes]
    inputs = [name for name in graph.inputs if name in needed_inputs]
    return calls, inputs, [source_of[out] for out in outputs]


def _example(shape: tuple, dtype: str) -> torch.Tensor:
    dims = tuple(EXAMPLE_BATCH if d is None else d for d in shape)
    torch_dtype = getattr(torch, dtype)
    if torch_dtype.is_floating_point:
        # positive (valid for log, sqrt), from a private generator: exporting leaves the
        # user's random stream where it was
        return torch.rand(dims, generator=torch.Generator().manual_seed(0)) + 0.5
    return torch.zeros(dims, dtype=torch_dtype)  # class 0: a valid index


def _torch_export(module: torch.nn.Module, args: tuple, path: Path, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic: tuple, opset: int) -> None:
    """``torch.onnx.export`` with its progress messages and deprecation warnings kept out of
    the user's console; the logging levels it touches are restored afterwards."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), input_names=list(input_names),
                              output_names=list(output_names), dynamic_shapes=dynamic,
                              opset_version=opset, dynamo=True, external_data=False,
                              verbose=False, report=False)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _reason(err: BaseException) -> str:
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(err)).split())  # no terminal colours
    return f"{type(err).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def _blame(graph: Graph, calls: Sequence[_Call], path: Path, opset: int) -> ExportError | None:
    """Export each node alone (on inputs of its static shapes) to find the one the exporter
    cannot express; None when each exports alone."""
    probe = path.parent / f".{path.name}.probe.onnx"
    try:
        for call in calls:
            ports = [port for port, _ in call.sources]
            names = [f"in_{port}" for port in ports]
            args = tuple(_example(graph.shapes[src], graph.dtypes[src])
                         for _, src in call.sources)
            params = {f"{call.node.name}.{k}": p.tensor for k, p in call.node.params.items()}
            local = _Call(call.node, tuple(zip(ports, names)), call.targets)
            module = _Inference([local], names, [name for _, name in call.targets], params)
            try:
                _torch_export(module, args, probe, names,
                              [port for port, _ in call.targets], None, opset)
            except Exception as err:  # noqa: BLE001 - any exporter failure is the answer
                return ExportError(
                    f"Graph '{graph.name}': node '{call.node.name}' "
                    f"({type(call.node).__name__}) cannot be expressed in ONNX: {_reason(err)}. "
                    f"Export outputs that do not depend on it (outputs=[...]).")
        return None
    finally:
        if probe.exists():
            probe.unlink()


def export_onnx(graph: Graph, path: str | os.PathLike, outputs: Sequence[str] | None = None,
                *, opset: int = OPSET, check: bool = True) -> OnnxSignature:
    """Write the inference computation of ``graph`` to the ONNX file ``path``.

    The export runs on the CPU whatever the graph's device (the model is traced there).

    Args:
        graph: the graph to export; its parameters' current values are stored in the file.
        path: the ``.onnx`` file to write.
        outputs: the Outputs to compute (default: all of the graph's). Only the Inputs they
            depend on become ONNX inputs, so exporting a trainer's ``likelihoods`` needs
            neither its labels nor its learning rate.
        opset: the ONNX opset (at least 18).
        check: run ``onnx.checker`` on the written file.

    Returns:
        the ONNX input and output names (the graph's own names).

    Raises:
        ExportError: an output is unknown, or a node cannot be expressed in ONNX (the message
            names it and the exporter's reason).
        MissingDependencyError: the ``onnx`` extra is not installed.
    """
    onnx = require("onnx", "onnx", "ONNX export")
    require("onnxscript", "onnx", "ONNX export")
    if opset < OPSET:
        raise ExportError(f"opset={opset}: the exporter writes opset {OPSET} or newer")
    outputs = list(graph.outputs) if outputs is None else list(outputs)
    unknown = [name for name in outputs if name not in graph.outputs]
    if unknown or not outputs:
        raise ExportError(f"Graph '{graph.name}': outputs {unknown or outputs} are not among "
                          f"its outputs {list(graph.outputs)}")
    path = Path(path)
    calls, inputs, results = _plan(graph, outputs)
    params = {name: p.tensor for name, p in graph.params.items()}
    module = _Inference(calls, inputs, results, params).eval()
    specs = [graph.inputs[name] for name in inputs]
    args = tuple(_example(spec.shape, "float32" if getattr(torch, spec.dtype).is_floating_point
                          else spec.dtype) for spec in specs)
    batch = torch.export.Dim("batch")
    dynamic = (tuple({0: batch} if spec.shape and spec.shape[0] is None else None
                     for spec in specs),) if specs else None  # one entry: ``*inputs``
    try:
        _torch_export(module, args, path, inputs, outputs, dynamic, opset)
    except Exception as err:  # noqa: BLE001 - the exporter raises many kinds
        blame = _blame(graph, calls, path, opset)
        raise (blame or ExportError(f"Graph '{graph.name}': the ONNX exporter failed: "
                                    f"{_reason(err)}")) from None
    if check:
        onnx.checker.check_model(str(path), full_check=True)
    return OnnxSignature(tuple(inputs), tuple(outputs))


__all__ = ["export_onnx", "ExportError", "OnnxSignature", "OPSET"]
