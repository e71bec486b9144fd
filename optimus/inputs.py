"""Converting a call's arrays to tensors, and results back to NumPy.

A `Graph` precomputes one `InputSpec` per Input when it is built, so that a call checks each
array's shape and dtype against it and converts it with as little work as possible: zero-copy
from a C-ordered NumPy array of the computing dtype, one cast otherwise. Inputs the engine
never reads (a learning rate given as a float) are checked but not converted.

A bad batch is refused here, before either engine runs, with an `InputError` naming the input
and the offending row: integers that a conversion would truncate or wrap (0.5, 2**40 for
int32), class labels outside ``[0, classes)`` (`index_bounds`), batched inputs whose row
counts differ, ragged lists (`check_rows`). The checks cost what eager PyTorch pays anyway: a
min/max over label vectors, a comparison only where a conversion copies.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .nodes.base import Node
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
        bound: ``(classes, what)`` when its values index an axis of that size (``what``
            names the node and port, for messages); None otherwise.
        tail: ``shape[1:]`` when that is every axis of known size (the usual batched
            input), so that a call checks them in one comparison; None otherwise.
    """

    shape: Shape
    dtype: torch.dtype
    np_dtype: np.dtype
    convert: bool
    fixed: tuple[tuple[int, int], ...]
    bound: tuple[int, str] | None = None
    tail: Shape | None = None


def input_specs(inputs: Mapping[str, Input], used: frozenset[str] | None,
                bounds: Mapping[str, tuple[int, str]] | None = None) -> dict[str, InputSpec]:
    """One spec per Input; ``used`` names the Inputs the engine reads (None: all);
    ``bounds`` as `index_bounds` returns."""
    specs = {}
    for name, spec in inputs.items():
        dtype = DTYPES[spec.dtype]
        dtype = FLOAT_DTYPE if dtype.is_floating_point else dtype
        np_dtype = np.dtype(str(dtype).removeprefix("torch."))
        fixed = tuple((axis, d) for axis, d in enumerate(spec.shape) if d is not None)
        bound = (bounds or {}).get(name) if not dtype.is_floating_point else None
        batch_then_fixed = spec.shape[:1] == (None,) and len(fixed) == len(spec.shape) - 1
        specs[name] = InputSpec(spec.shape, dtype, np_dtype, used is None or name in used, fixed,
                                bound, spec.shape[1:] if batch_then_fixed else None)
    return specs


def index_bounds(inputs: Mapping[str, Input], order: Sequence[Node],
                 source_of: Mapping[str, str], shapes: Mapping[str, Shape]
                 ) -> dict[str, tuple[int, str]]:
    """``{input: (size, what)}`` for the Inputs whose values index an axis of known size
    (a node's `index_ports`, e.g. class labels for a loss), the smallest such size."""
    bounds: dict[str, tuple[int, str]] = {}
    for node in order:
        for port, (other, axis) in node.index_ports.items():
            src = source_of.get(f"{node.name}.{port}")
            shape = shapes.get(source_of.get(f"{node.name}.{other}", ""))
            if src not in inputs or shape is None or not -len(shape) <= axis < len(shape):
                continue
            size = shape[axis]
            if size is not None and (src not in bounds or size < bounds[src][0]):
                bounds[src] = (size, f"node '{node.name}' ({type(node).__name__}: {other} has "
                                     f"{size} along axis {axis})")
    return bounds


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
    array = value if isinstance(value, (np.ndarray, torch.Tensor)) else _as_array(graph, name,
                                                                                 value)
    dims = array.shape
    if shape == () and len(dims) != 0:
        raise InputError(f"Graph '{graph}': input '{name}' is a scalar, got an array of "
                         f"shape {tuple(dims)}")
    if len(dims) != len(shape) or (dims[1:] != spec.tail if spec.tail is not None else
                                   any(dims[axis] != d for axis, d in spec.fixed)):
        raise InputError(f"Graph '{graph}': input '{name}' expects shape {shape}, "
                         f"got {tuple(dims)}")
    if isinstance(array, torch.Tensor):
        if not spec.convert:
            return None
        tensor = array.to(device=device or "cpu", dtype=spec.dtype)
        if not spec.dtype.is_floating_point:
            if array.dtype != spec.dtype:
                _check_exact(graph, name, array, tensor, spec)
            if spec.bound is not None and tensor.numel():
                _check_bound(graph, name, tensor, spec.bound)
        return tensor
    if array.dtype.kind not in "biuf":
        raise InputError(f"Graph '{graph}': input '{name}' must be numeric, got "
                         f"dtype {array.dtype}")
    if not spec.convert:
        return None
    if array.dtype != spec.np_dtype:
        with np.errstate(invalid="ignore", over="ignore"):
            converted = array.astype(spec.np_dtype, order="C")
        if spec.np_dtype.kind in "iu":
            _check_exact(graph, name, array, converted, spec)
        tensor = torch.from_numpy(converted)
    elif array.flags.c_contiguous and array.flags.writeable:
        tensor = torch.from_numpy(array)
    else:
        tensor = readonly_tensor(np.ascontiguousarray(array))
    if spec.bound is not None and array.size:
        _check_bound(graph, name, tensor, spec.bound)
    return tensor if device is None else tensor.to(device)


def _as_array(graph: str, name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)``, naming the input when it is ragged or not numbers."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as err:
        raise InputError(f"Graph '{graph}': input '{name}' is not a rectangular array of "
                         f"numbers ({str(err).splitlines()[0]}); pass a NumPy array or "
                         f"equal-length nested lists") from None


def _row(index: int, shape: tuple[int, ...]) -> str:
    """``row 3`` (or ``row 3, position (3, 1)``) for a flat index into an array of shape."""
    if not shape:
        return "the value"
    where = tuple(int(i) for i in np.unravel_index(index, shape))
    return f"row {where[0]}" + (f", position {where}" if len(where) > 1 else "")


def _check_exact(graph: str, name: str, given: Any, converted: Any, spec: InputSpec) -> None:
    """The conversion to the integer dtype kept every value (no truncated 0.5, no wrapped
    2**40, no NaN)."""
    if isinstance(given, torch.Tensor):
        same = converted.to(given.device) == given
        if bool(same.all()):
            return
        flat = int((~same).flatten().nonzero()[0])
        value = given.flatten()[flat].item()
        shape = tuple(given.shape)
    else:
        same = converted == given
        if same.all():
            return
        flat = int(np.argmin(same.reshape(-1)))
        value = given.reshape(-1)[flat].item()
        shape = given.shape
    info = np.iinfo(spec.np_dtype)
    why = ("is not an integer" if not float(value).is_integer() else
           f"does not fit {spec.np_dtype} ([{info.min}, {info.max}])")
    raise InputError(f"Graph '{graph}': input '{name}' {_row(flat, shape)} is {value!r}, which "
                     f"{why}; pass integers of dtype {spec.np_dtype}")


def _check_bound(graph: str, name: str, tensor: torch.Tensor, bound: tuple[int, str]) -> None:
    """Every value indexes the axis of size ``bound[0]``: in ``[0, size)``."""
    size, what = bound
    low, high = torch.aminmax(tensor)
    if int(low) >= 0 and int(high) < size:
        return
    bad = ((tensor < 0) | (tensor >= size)).flatten().nonzero()[0]
    flat = int(bad)
    value = tensor.flatten()[flat].item()
    raise InputError(f"Graph '{graph}': input '{name}' {_row(flat, tuple(tensor.shape))} is "
                     f"{value}, outside [0, {size - 1}]: it indexes {what}; fix the labels or "
                     f"the number of classes")


def check_rows(graph: str, tensors: Mapping[str, Any], batched: Sequence[str],
               training: bool, needs: tuple[int, str] | None = None) -> int | None:
    """The common row count of the batched inputs (``batched``: the names of the Inputs whose
    first axis is the batch; None: none of them given as a tensor); `InputError` when two
    differ, or in a training call (``training``) when it is 0 or below ``needs`` (``(rows,
    what)``: the node that needs them)."""
    n = None
    for key in batched:
        tensor = tensors[key]
        if tensor is None:
            continue
        if n is None:
            n = tensor.shape[0]
        elif tensor.shape[0] != n:
            listed = ", ".join(f"'{k}' {tensors[k].shape[0]}" for k in batched
                               if tensors[k] is not None)
            raise InputError(f"Graph '{graph}': batched inputs must have the same number of "
                             f"rows; got {listed}")
    if training and n is not None:
        if n == 0:
            raise InputError(f"Graph '{graph}': a training call got an empty batch (0 rows); "
                             f"pass at least one row, or a learning rate of 0 to evaluate")
        if needs is not None and n < needs[0]:
            raise InputError(f"Graph '{graph}': a training call got {n} row"
                             f"{'s' if n != 1 else ''}, but {needs[1]} needs at least "
                             f"{needs[0]}; pass a larger batch")
    return n


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
    return tensor.numpy() if tensor.is_cpu else tensor.cpu().numpy()
