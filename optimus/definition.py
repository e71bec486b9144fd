"""A graph as plain data and back: the JSON-ready definition document (`graph_to_dict`) and
the checked reading of one (`graph_from_dict`), naming the field path of every error.

Reading never executes code from the document: node and step-rule ``type`` names are looked up
in the registry, constructor fields are matched against the constructor's signature, and
nothing is allocated before the resource caps allow it (`optimus.limits`). Files (the JSON text,
the ``.npz`` of parameters, the pair's consistency) are `optimus.serialize`'s.
"""
from __future__ import annotations

import functools
import inspect
import reprlib
from collections.abc import Mapping
from typing import Any

import torch

from . import __version__, limits, registry
from .errors import ConfigError, FormatError, OptimusError
from .graph import Graph
from .ports import Input, Output

FORMAT_VERSION = 1

# How the graph runs, recorded only where it differs from these defaults (older readers
# ignore unknown top-level fields, so such files stay loadable by them).
PLACEMENT_DEFAULTS = {"engine": "auto", "device": "cpu", "chunk_size": "auto"}
AS_SAVED: Any = type("AsSaved", (), {"__repr__": lambda self: "AS_SAVED"})()

# A definition without ``format_version`` was written by the original 2015 library; its node
# types meant what that library computed, where optimus's default differs.
LEGACY_NODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "WeightDecayPenalty": {"form": "mean_row_norm"},  # weight * mean row L2 norm
}


def _typed(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    doc = {"type": kind}
    for key, value in config.items():
        doc[key] = list(value) if isinstance(value, tuple) else value
    return doc


def _placement(graph: Graph) -> dict[str, Any]:
    """``engine``, ``device`` and ``chunk_size`` where they are not the defaults."""
    device = graph.device
    values = {"engine": graph.engine_choice, "device": "cpu" if device.type == "cpu" else str(device),
              "chunk_size": graph.chunk_size}
    return {k: v for k, v in values.items() if v != PLACEMENT_DEFAULTS[k]}


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    """The JSON-ready definition of ``graph`` (no parameter values).

    Besides the wiring, it records how the graph runs where that is not the default:
    ``engine`` (default 'auto'), ``device`` (default 'cpu') and ``chunk_size`` (default
    'auto'; null means no chunking).
    """
    return {
        "type": "Graph",
        "format_version": FORMAT_VERSION,
        "optimus_version": __version__,
        "name": graph.name,
        "inputs": [_typed("Input", i.get_config()) for i in graph.inputs.values()],
        "nodes": [_typed(type(n).__name__, n.get_config()) for n in graph.nodes.values()],
        "connections": graph.connections,
        "outputs": [_typed("Output", o.get_config()) for o in graph.outputs.values()],
        "loss": None if graph.loss is None else {"type": "Output", "name": graph.loss},
        "updates": graph.updates,
        "step_rule": _typed(type(graph.step_rule).__name__, graph.step_rule.get_config()),
        **_placement(graph),
    }


@functools.lru_cache(maxsize=None)
def _signature(cls: type) -> inspect.Signature:
    """The constructor's signature (once per class: a 100,000-node file has few types)."""
    return inspect.signature(cls.__init__)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def short(value: Any) -> str:
    """A bounded repr for error messages: a field from a file may be huge or deeply nested."""
    return _SHORT.repr(value)


def clean_message(err: BaseException) -> str:
    """An exception's message without the C++ backtrace torch appends to some errors."""
    text = str(err).split("Exception raised from", 1)[0].strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return first[:300]


class _Reader:
    """Reads one definition document, naming the file and field path in every error."""

    def __init__(self, source: str, placement: Mapping[str, Any] | None = None):
        self.source = source
        self.placement = {k: v for k, v in (placement or {}).items() if v is not AS_SAVED}
        self.legacy = False

    def error(self, path: str, message: str) -> FormatError:
        return FormatError(f"{self.source}: {path}: {message}")

    def field(self, doc: Mapping, key: str, path: str, kind: type | tuple, default: Any = ...):
        if key not in doc:
            if default is not ...:
                return default
            raise self.error(f"{path}.{key}" if path else key, "missing field")
        value = doc[key]
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.error(f"{path}.{key}" if path else key,
                             f"expected {names}, got {type(value).__name__} {short(value)}")
        return value

    def build(self, kind: str, doc: Any, path: str, expected: str | None = None):
        """Instantiate a registered ``type`` from its JSON object."""
        if not isinstance(doc, dict):
            raise self.error(path, f"expected an object, got {short(doc)}")
        type_name = self.field(doc, "type", path, str)
        if expected is not None:
            if type_name != expected:
                raise self.error(f"{path}.type", f"expected '{expected}', got '{type_name}'")
            cls = {"Input": Input, "Output": Output}[expected]
        else:
            try:
                cls = registry.lookup(kind, type_name)
            except KeyError as err:
                raise self.error(f"{path}.type", err.args[0]) from None
        kwargs = {k: v for k, v in doc.items() if k != "type"}
        signature = _signature(cls)
        accepted = [p for p in signature.parameters if p != "self"]
        if self.legacy and kind == "node":
            for key, value in LEGACY_NODE_DEFAULTS.get(type_name, {}).items():
                if key in accepted:
                    kwargs.setdefault(key, value)
        for key in kwargs:
            if key not in accepted:
                raise self.error(f"{path}.{key}", f"unknown field for {type_name}; it takes "
                                 f"{', '.join(accepted)}")
        for name, param in signature.parameters.items():
            if name != "self" and param.default is inspect.Parameter.empty and name not in kwargs:
                raise self.error(f"{path}.{name}", f"missing field (required by {type_name})")
        try:
            return cls(**kwargs)
        except ConfigError as err:
            field = f"{path}.{err.field}" if err.field else path
            raise self.error(field, str(err)) from None
        except (TypeError, ValueError, OverflowError) as err:
            raise self.error(path, f"bad value for {type_name}: {clean_message(err)}") from None

    def graph(self, doc: Any) -> Graph:
        if not isinstance(doc, dict):
            raise self.error("(top)", "expected a JSON object describing a Graph")
        if doc.get("type", "Graph") != "Graph":
            raise self.error("type", f"expected 'Graph', got {doc.get('type')!r}")
        version = self.field(doc, "format_version", "", int, default=0)
        if version > FORMAT_VERSION:
            raise self.error("format_version", f"{version} is newer than this optimus "
                             f"understands ({FORMAT_VERSION}); upgrade optimus")
        self.legacy = "format_version" not in doc
        name = self.field(doc, "name", "", str)
        placement = self._placement(doc)
        inputs = [self.build("node", d, f"inputs[{i}]", "Input")
                  for i, d in enumerate(self.field(doc, "inputs", "", list))]
        nodes = [self.build("node", d, f"nodes[{i}]")
                 for i, d in enumerate(self.field(doc, "nodes", "", list))]
        outputs = [self.build("node", d, f"outputs[{i}]", "Output")
                   for i, d in enumerate(self.field(doc, "outputs", "", list))]
        connections = self._edges(self.field(doc, "connections", "", dict), "connections")
        updates = self.field(doc, "updates", "", (dict, type(None)), default=None)
        updates = self._edges(updates or {}, "updates")  # the original wrote null for none
        loss = self.field(doc, "loss", "", (dict, type(None)), default=None)
        if loss is not None:
            loss = self.build("node", loss, "loss", "Output").name
        rule = self.field(doc, "step_rule", "", dict, default=None)
        step_rule = None if rule is None else self.build("step_rule", rule, "step_rule")
        try:
            return Graph(name=name, inputs=inputs, nodes=nodes, connections=connections,
                         outputs=outputs, loss=loss, updates=updates, step_rule=step_rule,
                         **placement)
        except OptimusError as err:
            raise FormatError(f"{self.source}: {err}") from None

    def _placement(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The recorded engine, device and chunk size, unless the caller overrides them."""
        placement = {
            "engine": self.field(doc, "engine", "", str, default="auto"),
            "device": self.field(doc, "device", "", str, default="cpu"),
            "chunk_size": self.field(doc, "chunk_size", "", (int, str, type(None)),
                                     default="auto"),
        }
        recorded = placement["device"]
        placement.update(self.placement)
        if "device" not in self.placement and not _device_available(recorded):
            raise self.error("device", f"the graph was saved for device {recorded!r}, which is "
                             f"not available here; load it with optimus.load(..., "
                             f"device='cpu')")
        return placement

    def _edges(self, doc: dict, path: str) -> dict[str, list[str]]:
        for key, sinks in doc.items():
            if not isinstance(sinks, list) or not all(isinstance(s, str) for s in sinks):
                raise self.error(f"{path}.{key}", f"expected a list of names, got {short(sinks)}")
        return doc


def _device_available(name: str) -> bool:
    try:
        kind = torch.device(name).type
    except (RuntimeError, TypeError):
        return True  # not a device at all: Graph names the problem
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return True


def graph_from_dict(doc: Mapping[str, Any], source: str = "<definition>", *,
                    engine: str | None = AS_SAVED, device: str | None = AS_SAVED,
                    chunk_size: int | str | None = AS_SAVED, max_params: int | None = None,
                    max_ports: int | None = None) -> Graph:
    """Build a graph from its definition (as `graph_to_dict` returns or a JSON file holds).

    ``engine``, ``device`` and ``chunk_size`` override what the definition records (by
    default the graph runs as it was saved: see `graph_to_dict`).

    A definition without ``format_version`` is read as the original 2015 library wrote it:
    node fields it did not have take that library's meaning (`LEGACY_NODE_DEFAULTS`:
    ``WeightDecayPenalty`` is ``weight * mean row L2 norm``, ``form='mean_row_norm'``); a
    definition in the current format keeps the values it names, or today's defaults.

    Nothing is allocated before it is checked against the resource caps (`optimus.limits`):
    ``max_params`` parameter values in all (default 2**28, or ``OPTIMUS_MAX_PARAMS``) and
    ``max_ports`` input ports per node (default 4096, or ``OPTIMUS_MAX_PORTS``).

    Raises:
        FormatError: anything wrong with the definition, naming the field path (a
            `ResourceLimitError` names the node, the size asked and the limit).
    """
    placement = {"engine": engine, "device": device, "chunk_size": chunk_size}
    with limits.budget(max_params, max_ports):
        try:
            return _Reader(source, placement).graph(doc)
        except OptimusError:
            raise
        except RecursionError:
            raise FormatError(f"{source}: nested too deeply to be a graph definition") from None
        except MemoryError:
            raise FormatError(f"{source}: asks for more memory than is available") from None
        except (TypeError, ValueError, RuntimeError, IndexError, KeyError, AttributeError,
                OverflowError, ZeroDivisionError) as err:
            # A value no check anticipated reached torch or Python arithmetic; the definition
            # is at fault, and the message must not carry torch's C++ backtrace.
            raise FormatError(f"{source}: describes no valid graph ({type(err).__name__}: "
                              f"{clean_message(err)})") from None


__all__ = ["graph_to_dict", "graph_from_dict", "FORMAT_VERSION", "AS_SAVED",
           "PLACEMENT_DEFAULTS", "LEGACY_NODE_DEFAULTS", "short", "clean_message"]
