"""Converting a call's arrays to tensors, and results back to NumPy.

A `Graph` precomputes one `InputSpec` per Input when it is built, so that a call checks each
array's shape and dtype against it and converts it with as little work as possible: zero-copy
from a C-ordered NumPy array of the computing dtype, one cast otherwise. Inputs the engine
never reads (a learning rate given as a float) are checked but not converted.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .ports import DTYPES, Input, Shape

FLOAT_DTYPE = torch.float32  # float inputs are computed in float32, whatever the caller passes


@dataclass(frozen=True)
class InputSpec:
    """What a call checks and does with one Input's array.

    Attributes:
        shape: the Input's declared shape (``None`` for the batch axis).
        dtype: the torch dtype the engine computes it in.
        np_dtype: the same as a NumPy dtype (arrays of it convert without a copy).
        convert: the engine reads it (else it is only checked).
        fixed: ``(axis, size)`` for every axis of known size.
    """

    shape: Shape
    dtype: torch.dtype
    np_dtype: np.dtype
    convert: bool
    fixed: tuple[tuple[int, int], ...]


def input_specs(inputs: Mapping[str, Input], used: frozenset[str] | None
                ) -> dict[str, InputSpec]:
    """One spec per Input; ``used`` names the Inputs the engine reads (None: all)."""
    specs = {}
    for name, spec in inputs.items():
        dtype = DTYPES[spec.dtype]
        dtype = FLOAT_DTYPE if dtype.is_floating_point else dtype
        np_dtype = np.dtype(str(dtype).removeprefix("torch."))
        fixed = tuple((axis, d) for axis, d in enumerate(spec.shape) if d is not None)
        specs[name] = InputSpec(spec.shape, dtype, np_dtype, used is None or name in used, fixed)
    return specs


def check_names(graph: str, arrays: Mapping[str, Any], inputs: Mapping[str, Input]) -> None:
    """Raise `InputError` naming the missing and unknown inputs of a call."""
    missing = [n for n in inputs if n not in arrays]
    unknown = [n for n in arrays if n not in inputs]
    parts = []
    if missing:
        parts.append(f"missing inputs {', '.join(map(repr, missing))}")
    if unknown:
        parts.append(f"unknown inputs {', '.join(map(repr, unknown))}"
                     f" (it takes {', '.join(map(repr, inputs))})")
    if parts:
        raise InputError(f"Graph '{graph}': {'; '.join(parts)}")


def to_tensor(graph: str, name: str, value: Any, spec: InputSpec, device: torch.device | None
              ) -> torch.Tensor | None:
    """Check one input against its spec and convert it (zero-copy from NumPy when the dtype
    matches); None for an input only used as a learning rate, once checked. ``device`` is
    None for the CPU (no transfer)."""
    shape = spec.shape
    if not spec.convert and type(value) is float and shape == ():
        return None  # a learning rate given as a Python float: nothing to check
    array = value if isinstance(value, (np.ndarray, torch.Tensor)) else np.asarray(value)
    dims = array.shape
    if shape == () and len(dims) != 0:
        raise InputError(f"Graph '{graph}': input '{name}' is a scalar, got an array of "
                         f"shape {tuple(dims)}")
    if len(dims) != len(shape) or any(dims[axis] != d for axis, d in spec.fixed):
        raise InputError(f"Graph '{graph}': input '{name}' expects shape {shape}, "
                         f"got {tuple(dims)}")
    if isinstance(array, torch.Tensor):
        if not spec.convert:
            return None
        return array.to(device=device or "cpu", dtype=spec.dtype)
    if array.dtype.kind not in "biuf":
        raise InputError(f"Graph '{graph}': input '{name}' must be numeric, got "
                         f"dtype {array.dtype}")
    if not spec.convert:
        return None
    if array.dtype != spec.np_dtype:
        tensor = torch.from_numpy(array.astype(spec.np_dtype, order="C"))
    elif array.flags.c_contiguous and array.flags.writeable:
        tensor = torch.from_numpy(array)
    else:
        tensor = readonly_tensor(np.ascontiguousarray(array))
    return tensor if device is None else tensor.to(device)


_readonly_warned = False  # torch warns once per process about read-only NumPy memory


def readonly_tensor(array: np.ndarray) -> torch.Tensor:
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


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A result as NumPy. Engines hand out no live parameter (they clone those); an input
    passed as a tensor that requires grad may come straight back, hence the detach."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    return tensor.numpy() if tensor.device.type == "cpu" else tensor.cpu().numpy()
