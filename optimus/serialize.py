"""Saving and loading graphs as plain data: a JSON definition plus an ``.npz`` of parameters.

Loading never executes code from a file: node and step-rule ``type`` names are looked up in the
registry, arrays are read with ``allow_pickle=False`` after their headers are checked, and
sizes are capped before allocation (`optimus.limits`). `save` writes a consistent pair
(`optimus.storage`): after a crash, `load` gets the old pair or the new one, never a mix.
"""
from __future__ import annotations

import functools
import inspect
import json
import os
import reprlib
from collections.abc import Mapping
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, limits, registry, storage
from .errors import ConfigError, FormatError, OptimusError
from .storage import atomic_write
from .graph import Graph
from .ports import Input, Output

FORMAT_VERSION = 1
PathLike = str | os.PathLike

# How the graph runs, recorded only where it differs from these defaults (older readers
# ignore unknown top-level fields, so such files stay loadable by them).
PLACEMENT_DEFAULTS = {"engine": "auto", "device": "cpu", "chunk_size": "auto"}
AS_SAVED: Any = type("AsSaved", (), {"__repr__": lambda self: "AS_SAVED"})()

# A definition without ``format_version`` was written by the original 2015 library; its node
# types meant what that library computed, where optimus's default differs.
LEGACY_NODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "WeightDecayPenalty": {"form": "mean_row_norm"},  # weight * mean row L2 norm
}


# -- parameter files ------------------------------------------------------------------------
def save_params(values: Mapping[str, np.ndarray], path: PathLike) -> None:
    """Write ``{name: array}`` to an ``.npz`` file, atomically."""
    storage.write_npz(path, values)


def load_params(path: PathLike, max_values: int | None = None) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, refusing pickled objects; each member's header
    is checked before its data is read, and the file may hold at most ``max_values`` values
    (default: the parameter cap, `optimus.limits.max_params`).

    Raises:
        FormatError: the file is truncated, corrupt, not an npz, holds object arrays or
            members that are not ``.npy`` data, or more values than ``max_values``.
    """
    cap = limits.max_params() if max_values is None else max_values
    return storage.read_npz(path, max_values=cap)


# -- definition -------------------------------------------------------------------------------
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


def save(graph: Graph, def_file: PathLike, param_file: PathLike | None = None) -> None:
    """Write the graph's JSON definition and, if ``param_file`` is given, its parameters, as
    one consistent pair: the parameters are written first, then the definition, which records
    the parameter file's name and sha256 (field ``params``). After a crash at any instant,
    `load` gets the old pair or the new pair, never a mix (`optimus.storage.commit_pair`)."""
    doc = graph_to_dict(graph)
    if param_file is None:
        text = json.dumps(doc, indent=2) + "\n"
        atomic_write(def_file, lambda f: f.write(text.encode("utf-8")))
        return
    record = os.path.relpath(os.path.abspath(param_file), os.path.abspath(Path(def_file).parent))

    def definition(digest: str) -> bytes:
        doc["params"] = {"file": Path(record).as_posix(), "sha256": digest}
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")

    storage.commit_pair(def_file, definition, param_file, graph.param_values,
                        _recorded_digest(def_file, param_file))


def _recorded_params(doc: Any, def_file: PathLike, param_file: PathLike) -> str | None:
    """The sha256 a definition records for ``param_file``, if it records that file."""
    record = doc.get("params") if isinstance(doc, dict) else None
    if not (isinstance(record, dict) and isinstance(record.get("file"), str)
            and isinstance(record.get("sha256"), str)):
        return None
    recorded = Path(os.path.abspath(Path(def_file).parent / record["file"]))
    return record["sha256"] if recorded == Path(os.path.abspath(param_file)) else None


def _recorded_digest(def_file: PathLike, param_file: PathLike) -> str | None:
    """The digest the definition now at ``def_file`` records for ``param_file``, if any."""
    try:
        if os.path.getsize(def_file) > MAX_DEFINITION_BYTES:
            return None
        doc = json.loads(Path(def_file).read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return _recorded_params(doc, def_file, param_file)


MAX_DEFINITION_BYTES = 512 * 2**20  # a 100,000-node chain is ~25 MB


def read_definition(def_file: PathLike) -> Any:
    """The JSON document of a definition file.

    Raises:
        FormatError: not UTF-8, not JSON, nested too deeply, or over `MAX_DEFINITION_BYTES`.
    """
    size = os.path.getsize(def_file)
    if size > MAX_DEFINITION_BYTES:
        raise FormatError(f"{def_file}: {size:,} bytes, over the {MAX_DEFINITION_BYTES:,} a "
                          f"definition may have; is it a definition file?")
    try:
        text = Path(def_file).read_bytes().decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError as err:
        raise FormatError(f"{def_file}: not a UTF-8 text file ({err}); is it a parameter "
                          f"file? Pass the JSON definition first") from None
    except json.JSONDecodeError as err:
        raise FormatError(f"{def_file}: not valid JSON: {err.msg} at line {err.lineno}, "
                          f"column {err.colno}") from None
    except RecursionError:
        raise FormatError(f"{def_file}: JSON nested too deeply to be a graph "
                          f"definition") from None
    except (ValueError, MemoryError) as err:  # e.g. an integer of more than 4300 digits
        raise FormatError(f"{def_file}: not a usable JSON document ({clean_message(err)})"
                          ) from None


def load(def_file: PathLike, param_file: PathLike | None = None, *,
         engine: str | None = AS_SAVED, device: str | None = AS_SAVED,
         chunk_size: int | str | None = AS_SAVED, max_params: int | None = None,
         max_ports: int | None = None, partial: bool = False, allow_nonfinite: bool = False,
         check_pair: bool = True) -> Graph:
    """Rebuild a graph from its JSON definition, and set its parameters from ``param_file``.

    The graph runs with the ``engine``, ``device`` and ``chunk_size`` its definition records
    (the defaults 'auto', 'cpu', 'auto' when it records none); pass any of them to override,
    e.g. ``optimus.load(definition, params, device='cpu')`` for a graph saved on a GPU.

    Loading runs no code from the files and allocates nothing unchecked: parameters beyond
    ``max_params`` values in all, nodes with more than ``max_ports`` input ports
    (`optimus.limits`), and parameter-file members whose header does not match the definition
    are refused before allocation. Every parameter must be in ``param_file`` (unless
    ``partial=True``: the missing ones keep their initial values) and finite (unless
    ``allow_nonfinite=True``). A parameter file the definition was saved with (by `save`)
    must be that save's file (unless ``check_pair=False``); unused arrays are skipped unread.

    Raises:
        FormatError: the file is not valid JSON or describes no valid graph; the message
            names the file and the field path (e.g. ``nodes[2].weight_shape``); or the
            parameter file does not fit the definition.
    """
    doc = read_definition(def_file)
    graph = graph_from_dict(doc, source=str(def_file), engine=engine, device=device,
                            chunk_size=chunk_size, max_params=max_params, max_ports=max_ports)
    if param_file is not None:
        source = param_file
        digest = _recorded_params(doc, def_file, param_file) if check_pair else None
        if digest is not None:
            source = storage.pair_params(param_file, digest, def_file)
        expected = {name: p.shape for name, p in graph.params.items()}
        values = storage.read_npz(source, expected)
        _check_params(graph, values, param_file, partial, allow_nonfinite)
        unused = _unused_keys(source, expected)
        if unused:
            warnings.warn(f"{param_file}: skipped arrays graph '{graph.name}' does not have: "
                          f"{', '.join(map(repr, unused[:10]))}"
                          f"{' ...' if len(unused) > 10 else ''}", stacklevel=2)
        graph.param_values = values
    return graph


def _unused_keys(path: PathLike, expected: Mapping[str, Any]) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [n[:-4] for n in archive.namelist() if n[:-4] not in expected]


def _check_params(graph: Graph, values: Mapping[str, np.ndarray], source: PathLike,
                  partial: bool, allow_nonfinite: bool) -> None:
    missing = [name for name in graph.params if name not in values]
    if missing and not partial:
        raise FormatError(f"{source}: has no values for {len(missing)} parameter"
                          f"{'s' if len(missing) > 1 else ''} of graph '{graph.name}': "
                          f"{', '.join(map(repr, missing[:10]))}{' ...' if len(missing) > 10 else ''}"
                          f"; pass partial=True to keep their initial values")
    if not allow_nonfinite:
        for name, array in values.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                bad = int(np.size(array) - np.isfinite(array).sum())
                raise FormatError(f"{source}: parameter '{name}' holds {bad} non-finite "
                                  f"value{'s' if bad > 1 else ''} (NaN or inf); pass "
                                  f"allow_nonfinite=True to load it anyway")


def to_json(graph: Graph) -> str:
    """The definition as a JSON string."""
    return json.dumps(graph_to_dict(graph), indent=2)


__all__ = ["save", "load", "save_params", "load_params", "graph_to_dict", "graph_from_dict",
           "atomic_write", "to_json", "AS_SAVED", "PLACEMENT_DEFAULTS",
           "LEGACY_NODE_DEFAULTS"]
