"""Checkpoints: everything a training run needs to resume to the same numbers, in one file.

A checkpoint is a single ``.npz`` written atomically, holding

- ``checkpoint.json``: UTF-8 JSON (as a byte array): the graph's definition, the optimizer's
  group settings, the driver's state (iteration, epoch, position in the data, hyperparameters
  such as learning rates, random states, extension states such as the best value so far);
- ``param/{parameter}``: the parameter values;
- ``optimizer/{parameter}/{key}``: the optimizer's state tensors (Adam's moments, ...);
- ``state/...``: arrays inside the driver state (random states, statistics columns).

Loading reads it with ``allow_pickle=False``: no pickle, no `torch.load`, no code from the file.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FormatError
from ..graph import Graph
from ..optim import load_optimizer_state, optimizer_state
from ..serialize import atomic_write, graph_from_dict, graph_to_dict, load_params

CHECKPOINT_FORMAT = 1
META_KEY = "checkpoint.json"
PathLike = str | os.PathLike


# -- nested state <-> JSON + arrays -------------------------------------------------------------
def pack(value: Any, arrays: dict[str, np.ndarray], path: str = "state") -> Any:
    """``value`` as JSON data: arrays and tensors move to ``arrays`` (as ``{"array": key}``),
    tuples become ``{"tuple": [...]}``, NumPy scalars become numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        arrays[path] = np.array(value)
        return {"array": path}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"tuple": [pack(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [pack(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise FormatError(f"cannot checkpoint {path}: key {key!r} is not a string")
        return {"dict": {k: pack(v, arrays, f"{path}/{k}") for k, v in value.items()}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise FormatError(f"cannot checkpoint {path} = {value!r}: only numbers, strings, lists, "
                      f"dicts and arrays can be saved")


def unpack(value: Any, arrays: Mapping[str, np.ndarray], source: str = "checkpoint") -> Any:
    """The inverse of `pack`."""
    if isinstance(value, list):
        return [unpack(v, arrays, source) for v in value]
    if isinstance(value, dict):
        if set(value) == {"array"}:
            if value["array"] not in arrays:
                raise FormatError(f"{source}: array {value['array']!r} is missing")
            return arrays[value["array"]]
        if set(value) == {"tuple"}:
            return tuple(unpack(v, arrays, source) for v in value["tuple"])
        if set(value) == {"dict"}:
            return {k: unpack(v, arrays, source) for k, v in value["dict"].items()}
        raise FormatError(f"{source}: unexpected object {sorted(value)} in the saved state")
    return value


# -- the file -------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """The contents of a checkpoint file.

    Attributes:
        definition: the graph's JSON definition (as `optimus.serialize.graph_to_dict`).
        params: ``{parameter name: array}``.
        optimizer: the optimizer's state as `optimus.optim.optimizer_state` returns it
            (``(meta, arrays)``), or None for a graph without updates.
        state: the driver's state (iteration, epoch, hyperparams, rng, extensions, ...), with
            its arrays restored.
        path: the file it was read from.
    """

    definition: dict[str, Any]
    params: dict[str, np.ndarray]
    optimizer: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    path: str = "<memory>"

    def graph(self) -> Graph:
        """A new graph built from the definition, with the saved parameters and optimizer
        state (e.g. to score the model or keep training it by hand)."""
        graph = graph_from_dict(self.definition, source=self.path)
        restore_graph(graph, self)
        return graph


def _param_names(graph: Graph) -> dict[int, str]:
    return {id(p.tensor): name for name, p in graph.params.items()}


def save_checkpoint(path: PathLike, graph: Graph, state: Mapping[str, Any] | None = None
                    ) -> Path:
    """Write ``graph`` (definition, parameters, optimizer state) and ``state`` to ``path``,
    atomically; returns the path.

    Args:
        state: JSON-like data (numbers, strings, lists, dicts, tuples, arrays), e.g. the
            driver's iteration and random states.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {f"param/{k}": v for k, v in graph.param_values.items()}
    doc: dict[str, Any] = {"type": "Checkpoint", "format_version": CHECKPOINT_FORMAT,
                           "definition": graph_to_dict(graph), "optimizer": None}
    if graph.optimizer is not None:
        meta, tensors = optimizer_state(graph.optimizer, _param_names(graph))
        doc["optimizer"] = meta
        arrays.update({f"optimizer/{k}": v for k, v in tensors.items()})
    state_arrays: dict[str, np.ndarray] = {}
    doc["state"] = pack(dict(state or {}), state_arrays)
    arrays.update(state_arrays)
    text = json.dumps(doc, allow_nan=True)
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (no pickle, no code execution).

    Raises:
        FileNotFoundError: no such file.
        FormatError: the file is not an optimus checkpoint, or is corrupt or truncated.
    """
    arrays = load_params(path)  # allow_pickle=False; corrupt files raise FormatError
    if META_KEY not in arrays:
        raise FormatError(f"{path}: not an optimus checkpoint (no {META_KEY!r} entry); "
                          f"parameter files load with optimus.load or load_params")
    try:
        doc = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: {META_KEY} is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("type") != "Checkpoint":
        raise FormatError(f"{path}: {META_KEY} does not describe a Checkpoint")
    if doc.get("format_version", 0) > CHECKPOINT_FORMAT:
        raise FormatError(f"{path}: checkpoint format {doc['format_version']} is newer than "
                          f"this optimus understands ({CHECKPOINT_FORMAT}); upgrade optimus")

    def under(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    optimizer = None if doc.get("optimizer") is None else (doc["optimizer"],
                                                           under("optimizer/"))
    state = unpack(doc.get("state", {"dict": {}}), arrays, str(path))
    return Checkpoint(definition=doc["definition"], params=under("param/"),
                      optimizer=optimizer, state=state, path=str(path))


def restore_graph(graph: Graph, checkpoint: Checkpoint) -> None:
    """Set ``graph``'s parameters and optimizer state from ``checkpoint``.

    Raises:
        FormatError: the checkpoint was made from a different graph (other parameters,
            shapes, step rule or update groups); the message names the difference.
    """
    params = graph.params
    missing = [name for name in params if name not in checkpoint.params]
    unknown = [name for name in checkpoint.params if name not in params]
    if missing or unknown:
        raise FormatError(f"{checkpoint.path}: checkpoint parameters do not match graph "
                          f"'{graph.name}' (missing {missing}, unknown {unknown}); resume with "
                          f"the graph the checkpoint was made from")
    for name, param in params.items():
        if checkpoint.params[name].shape != param.shape:
            raise FormatError(f"{checkpoint.path}: parameter '{name}' has shape "
                              f"{checkpoint.params[name].shape}, graph '{graph.name}' expects "
                              f"{param.shape}")
    saved_rule = checkpoint.definition.get("step_rule")
    current_rule = graph_to_dict(graph)["step_rule"]
    if saved_rule is not None and saved_rule != current_rule:
        raise FormatError(f"{checkpoint.path}: the checkpoint was trained with step rule "
                          f"{saved_rule}, graph '{graph.name}' has {current_rule}; use the same "
                          f"step rule to resume")
    graph.param_values = checkpoint.params
    if graph.optimizer is not None and checkpoint.optimizer is not None:
        meta, tensors = checkpoint.optimizer
        load_optimizer_state(graph.optimizer, _param_names(graph), meta, tensors,
                             source=checkpoint.path)


__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "restore_graph", "pack",
           "unpack"]
