"""Saving and loading graphs as plain data: a JSON definition plus an ``.npz`` of parameters.

Loading never executes code from a file: node and step-rule ``type`` names are looked up in the
registry, arrays are read with ``allow_pickle=False``. Every file is written atomically, so a
crash mid-save leaves the previous file intact.
"""
from __future__ import annotations

import inspect
import json
import os
import secrets
import stat
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from . import __version__, registry
from .errors import ConfigError, FormatError, OptimusError
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


# -- files ------------------------------------------------------------------------------------
def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create a new, empty file next to ``path`` with a random name, as ``open(..., 'w')``
    would create ``path``: mode 0o666 filtered by the process umask (and any default ACL) by
    the kernel itself, so the umask is never read or changed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: could not create a temporary file next to it")


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(fileobj)`` all-or-nothing: a temporary file in the same
    folder is flushed, fsynced and renamed over ``path``.

    The file gets the permissions a plain ``open(path, 'w')`` would give it: an existing
    file keeps its mode; a new one gets 0o666 less the umask (0o644 under the usual 0o022).
    """
    path = Path(path)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fileobj:
            try:
                os.chmod(fileobj.fileno() if os.chmod in os.supports_fd else tmp,
                         stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass  # a new file: the mode the kernel gave the temporary one
            write(fileobj)
            fileobj.flush()
            os.fsync(fileobj.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_params(values: Mapping[str, np.ndarray], path: PathLike) -> None:
    """Write ``{name: array}`` to an ``.npz`` file, atomically."""
    arrays = {k: np.asarray(v) for k, v in values.items()}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_params(path: PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, refusing pickled objects.

    Raises:
        FormatError: the file is truncated, corrupt, not an npz, or holds object arrays.
    """
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with open(path, "rb") as fileobj:
            archive = np.load(fileobj, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise FormatError(f"{path}: is a single .npy array, not an .npz of parameters")
            with archive:
                return {key: archive[key] for key in archive.files}
    except FormatError:
        raise
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise FormatError(f"{path}: not a readable .npz parameter file ({err}); re-save it "
                          f"with optimus.save") from None


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
                             f"expected {names}, got {type(value).__name__} {value!r}")
        return value

    def build(self, kind: str, doc: Any, path: str, expected: str | None = None):
        """Instantiate a registered ``type`` from its JSON object."""
        if not isinstance(doc, dict):
            raise self.error(path, f"expected an object, got {doc!r}")
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
        signature = inspect.signature(cls.__init__)
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
        except (TypeError, ValueError) as err:
            raise self.error(path, f"bad value for {type_name}: {err}") from None

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
                raise self.error(f"{path}.{key}", f"expected a list of names, got {sinks!r}")
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
                    chunk_size: int | str | None = AS_SAVED) -> Graph:
    """Build a graph from its definition (as `graph_to_dict` returns or a JSON file holds).

    ``engine``, ``device`` and ``chunk_size`` override what the definition records (by
    default the graph runs as it was saved: see `graph_to_dict`).

    A definition without ``format_version`` is read as the original 2015 library wrote it:
    node fields it did not have take that library's meaning (`LEGACY_NODE_DEFAULTS`:
    ``WeightDecayPenalty`` is ``weight * mean row L2 norm``, ``form='mean_row_norm'``); a
    definition in the current format keeps the values it names, or today's defaults.
    """
    placement = {"engine": engine, "device": device, "chunk_size": chunk_size}
    return _Reader(source, placement).graph(doc)


def save(graph: Graph, def_file: PathLike, param_file: PathLike | None = None) -> None:
    """Write the graph's JSON definition and, if ``param_file`` is given, its parameters."""
    text = to_json(graph) + "\n"
    atomic_write(def_file, lambda f: f.write(text.encode("utf-8")))
    if param_file is not None:
        save_params(graph.param_values, param_file)


def load(def_file: PathLike, param_file: PathLike | None = None, *,
         engine: str | None = AS_SAVED, device: str | None = AS_SAVED,
         chunk_size: int | str | None = AS_SAVED) -> Graph:
    """Rebuild a graph from its JSON definition, and set its parameters from ``param_file``.

    The graph runs with the ``engine``, ``device`` and ``chunk_size`` its definition records
    (the defaults 'auto', 'cpu', 'auto' when it records none); pass any of them to override,
    e.g. ``optimus.load(definition, params, device='cpu')`` for a graph saved on a GPU.

    Raises:
        FormatError: the file is not valid JSON or describes no valid graph; the message
            names the file and the field path (e.g. ``nodes[2].weight_shape``).
    """
    try:
        text = Path(def_file).read_text(encoding="utf-8")
        doc = json.loads(text)
    except UnicodeDecodeError as err:
        raise FormatError(f"{def_file}: not a UTF-8 text file ({err})") from None
    except json.JSONDecodeError as err:
        raise FormatError(f"{def_file}: not valid JSON: {err.msg} at line {err.lineno}, "
                          f"column {err.colno}") from None
    graph = graph_from_dict(doc, source=str(def_file), engine=engine, device=device,
                            chunk_size=chunk_size)
    if param_file is not None:
        values = load_params(param_file)
        _check_params(graph, values, param_file)
        graph.param_values = values
    return graph


def _check_params(graph: Graph, values: Mapping[str, np.ndarray], source: PathLike) -> None:
    for name, param in graph.params.items():
        if name in values and values[name].shape != param.shape:
            raise FormatError(f"{source}: parameter '{name}' has shape {values[name].shape}, "
                              f"graph '{graph.name}' expects {param.shape}")


def to_json(graph: Graph) -> str:
    """The definition as a JSON string."""
    return json.dumps(graph_to_dict(graph), indent=2)


__all__ = ["save", "load", "save_params", "load_params", "graph_to_dict", "graph_from_dict",
           "atomic_write", "to_json", "AS_SAVED", "PLACEMENT_DEFAULTS",
           "LEGACY_NODE_DEFAULTS"]
