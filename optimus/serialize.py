"""Saving and loading graphs as files: a JSON definition plus an ``.npz`` of parameters.

Loading never executes code from a file: the definition is read by `optimus.definition`
(registered ``type`` names only), arrays with ``allow_pickle=False`` after their headers are
checked, and sizes are capped before allocation (`optimus.limits`). `save` writes a consistent
pair (`optimus.storage`): after a crash, `load` gets the old pair or the new one, never a mix.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import limits, storage
from .definition import (AS_SAVED, FORMAT_VERSION, LEGACY_NODE_DEFAULTS, PLACEMENT_DEFAULTS,
                         clean_message, graph_from_dict, graph_to_dict)
from .errors import FormatError
from .graph import Graph
from .storage import atomic_write

PathLike = str | os.PathLike


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
           "atomic_write", "to_json", "AS_SAVED", "FORMAT_VERSION", "PLACEMENT_DEFAULTS",
           "LEGACY_NODE_DEFAULTS"]
