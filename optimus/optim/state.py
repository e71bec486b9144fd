"""Optimizer state as plain data: tensors keyed by parameter name plus JSON, never pickle.

A checkpoint stores a torch optimizer's state (Adam's moments, SGD's velocity, step counts)
so that training resumes to the same numbers. `torch.save` would pickle it; instead the
tensors become NumPy arrays named ``{parameter}/{key}`` and everything else (hyperparameters
of each param group, scalars) becomes JSON.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import FormatError


def _to_json(value: Any, path: str) -> Any:
    """Group settings as JSON; tuples (Adam's betas) are tagged so they come back as tuples."""
    if isinstance(value, tuple):
        return {"tuple": [_to_json(v, path) for v in value]}
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise FormatError(f"optimizer setting {path} is a tensor of shape "
                              f"{tuple(value.shape)}; only numbers can be saved")
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise FormatError(f"optimizer setting {path} = {value!r} is not JSON data and cannot be "
                      f"saved in a checkpoint")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"tuple"}:
        return tuple(_from_json(v) for v in value["tuple"])
    return value


def optimizer_state(optimizer: torch.optim.Optimizer, names: Mapping[int, str]
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split ``optimizer``'s state into JSON and arrays.

    Args:
        optimizer: a torch optimizer whose param groups carry a ``name``.
        names: ``{id(tensor): parameter name}`` for every parameter it updates.

    Returns:
        ``(meta, arrays)``: meta holds each group's settings and, per parameter, the state
        entries that are not tensors; arrays maps ``'{parameter}/{key}'`` to a copy of each
        state tensor.
    """
    meta: dict[str, Any] = {"type": type(optimizer).__name__, "groups": [], "state": {}}
    arrays: dict[str, np.ndarray] = {}
    for i, group in enumerate(optimizer.param_groups):
        settings = {k: _to_json(v, f"param_groups[{i}].{k}")
                    for k, v in group.items() if k != "params"}
        settings["params"] = [names[id(p)] for p in group["params"]]
        meta["groups"].append(settings)
        for param in group["params"]:
            name = names[id(param)]
            entries: dict[str, Any] = {}
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor):
                    arrays[f"{name}/{key}"] = value.detach().cpu().numpy().copy()
                    entries[key] = {"array": f"{name}/{key}"}
                else:
                    entries[key] = _to_json(value, f"state[{name!r}].{key}")
            if entries:
                meta["state"][name] = entries
    return meta, arrays


def load_optimizer_state(optimizer: torch.optim.Optimizer, names: Mapping[int, str],
                         meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                         source: str = "checkpoint") -> None:
    """Restore what `optimizer_state` returned into ``optimizer`` (built over the same
    parameters, in the same groups).

    Raises:
        FormatError: the saved state belongs to another optimizer type, other groups or other
            parameters; the message names the difference.
    """
    if meta.get("type") != type(optimizer).__name__:
        raise FormatError(f"{source}: optimizer state is for {meta.get('type')}, but the graph's "
                          f"step rule builds {type(optimizer).__name__}; use the same step rule")
    groups = meta.get("groups", [])
    current = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    saved = [g.get("params") for g in groups]
    if saved != current:
        raise FormatError(f"{source}: optimizer groups {saved} do not match the graph's "
                          f"{current}; resume with the graph the checkpoint was made from")
    index = {name: i for i, name in enumerate(n for g in current for n in g)}
    state: dict[int, dict[str, Any]] = {}
    for name, entries in meta.get("state", {}).items():
        if name not in index:
            raise FormatError(f"{source}: optimizer state for unknown parameter {name!r}")
        state[index[name]] = {}
        for key, value in entries.items():
            if isinstance(value, dict) and set(value) == {"array"}:
                if value["array"] not in arrays:
                    raise FormatError(f"{source}: optimizer array {value['array']!r} is missing")
                state[index[name]][key] = torch.from_numpy(np.array(arrays[value["array"]]))
            else:
                state[index[name]][key] = _from_json(value)
    param_groups = []
    offset = 0
    for group in groups:
        settings = {k: _from_json(v) for k, v in group.items() if k != "params"}
        settings["params"] = list(range(offset, offset + len(group["params"])))
        offset += len(group["params"])
        param_groups.append(settings)
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
