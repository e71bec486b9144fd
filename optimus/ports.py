"""The named things a graph is wired from: `Input`, `Output`, node `Port`s and `Parameter`s.

Shapes are tuples whose first entry may be ``None`` (a variable batch size). A scalar has shape
``()``; the JSON format writes it as ``null``, as the original library did. A port whose shape is
not known until the graph is wired (e.g. a `Softmax` built without ``input_shape``) has
``shape is None``.
"""
from __future__ import annotations

import reprlib

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import limits
from .errors import ConfigError, ParameterError, ResourceLimitError

Shape = tuple[int | None, ...]

DTYPES = {
    "float16": torch.float16, "float32": torch.float32, "float64": torch.float64,
    "bfloat16": torch.bfloat16, "int8": torch.int8, "int16": torch.int16,
    "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool,
}


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if it is a usable identifier for an input, node or output."""
    if not isinstance(name, str) or not name or "." in name:
        raise ConfigError(
            f"{what} name must be a non-empty string without '.', got {name!r}", field="name")
    return name


def as_shape(shape: Any, owner: str, field: str = "shape", scalar_ok: bool = True) -> Shape | None:
    """Normalise a user-given shape; ``None`` (scalar) becomes ``()`` when ``scalar_ok``.

    Raises:
        ConfigError: a dimension is not a positive int, or ``None`` appears after the first axis.
        ResourceLimitError: more than `limits.MAX_RANK` axes, or an axis over `limits.MAX_DIM`.
    """
    if shape is None:
        if scalar_ok:
            return ()
        return None
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise ConfigError(f"'{owner}': {field} must be a tuple of ints, got {reprlib.repr(shape)}",
                          node=owner, field=field)
    if len(shape) > limits.MAX_RANK:
        raise ResourceLimitError(f"'{owner}': {field} has {len(shape)} axes, over the limit of "
                                 f"{limits.MAX_RANK}", node=owner, field=field)
    dims = []
    for axis, dim in enumerate(shape):
        if dim is None and axis == 0:
            dims.append(None)
        elif isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim > 0:
            if dim > limits.MAX_DIM:
                raise ResourceLimitError(
                    f"'{owner}': {field}[{axis}] = {int(dim):,} is over the limit of "
                    f"{limits.MAX_DIM:,} per axis", node=owner, field=field)
            dims.append(int(dim))
        else:
            hint = " (only the first dimension may be None)" if dim is None else ""
            raise ConfigError(
                f"'{owner}': {field}[{axis}] must be a positive int, got {reprlib.repr(dim)}{hint}",
                node=owner, field=field)
    return tuple(dims)


def as_dtype(dtype: Any, owner: str, field: str = "dtype") -> str:
    """Return the canonical name of ``dtype`` ('float32', 'int32', ...)."""
    try:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    except (TypeError, ValueError):
        name = None
    if name not in DTYPES:
        raise ConfigError(
            f"'{owner}': {field} {reprlib.repr(dtype)} is not supported; use one of {sorted(DTYPES)}",
            node=owner, field=field)
    return name


def shape_to_json(shape: Shape | None) -> list | None:
    """Shapes in JSON: a list, or null for a scalar (the original library's convention)."""
    return None if not shape else list(shape)


class Input:
    """A named graph input; graphs are called with one keyword array per Input.

    Args:
        name: the keyword under which the graph takes this array.
        shape: ``(None, 1, 28, 28)`` for a batch of images; ``None`` for a scalar.
        dtype: what the caller passes; float inputs are cast to the graph's float dtype.
    """

    def __init__(self, name: str, shape: Sequence[int | None] | None = None,
                 dtype: str = "float32"):
        self.name = check_name(name, "Input")
        self.shape: Shape = as_shape(shape, name)
        self.dtype = as_dtype(dtype, name)

    def get_config(self) -> dict:
        return {"name": self.name, "shape": shape_to_json(self.shape), "dtype": self.dtype}

    def __repr__(self) -> str:
        return f"Input(name={self.name!r}, shape={self.shape}, dtype={self.dtype!r})"


class Output:
    """A named tap on the graph: whatever is connected to it is returned by a call."""

    def __init__(self, name: str):
        self.name = check_name(name, "Output")

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"Output(name={self.name!r})"


class Port:
    """A named input or output of a node, addressed as ``'{node}.{port}'``."""

    def __init__(self, node: str, name: str, shape: Shape | None = None):
        self.node = node
        self.short_name = name
        self.shape = shape

    @property
    def name(self) -> str:
        return f"{self.node}.{self.short_name}"

    def __repr__(self) -> str:
        return f"Port({self.name!r}, shape={self.shape})"


class Parameter:
    """A named, learnable (or stored) array of a node, addressed as ``'{node}.{param}'``.

    The value lives in a torch tensor shared by every graph built from the node, so a trainer
    and a predictor see the same numbers. Values default to zero. Its size is checked against
    the parameter cap (`optimus.limits`) before anything is allocated.
    """

    def __init__(self, node: str, name: str, shape: Shape, trainable: bool = True,
                 dtype: torch.dtype = torch.float32):
        self.node = node
        self.short_name = name
        self.shape = tuple(shape)
        self.trainable = trainable
        limits.check_param(self.name, self.shape)  # before allocating anything
        data = torch.zeros(self.shape, dtype=dtype)
        self.tensor = torch.nn.Parameter(data, requires_grad=trainable)

    @property
    def name(self) -> str:
        return f"{self.node}.{self.short_name}"

    @property
    def value(self) -> np.ndarray:
        """A NumPy copy of the current value."""
        return self.tensor.detach().cpu().numpy().copy()

    @value.setter
    def value(self, array: Any) -> None:
        array = np.asarray(array)
        if array.shape != self.shape:
            raise ParameterError(
                f"Parameter '{self.name}' has shape {self.shape}; the value given has shape "
                f"{array.shape}. Pass an array of shape {self.shape}.")
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ParameterError(
                f"Parameter '{self.name}' takes numbers; the value given has dtype {array.dtype}.")
        with torch.no_grad():
            self.tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.shape})"
