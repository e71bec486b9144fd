"""Nodes that move values around without arithmetic: Dimshuffle, Flatten, Slice, SliceGT.

Dimshuffle, Flatten and Slice take an optional ``input_shape``: then their ``output.shape`` is
known when the node is built."""
from __future__ import annotations

import numbers
from collections.abc import Sequence

from . import checks
from .base import Node, shape_config
from .specs import FlattenSpec

BROADCAST = "x"  # a new axis of length 1, as in Theano's dimshuffle


class Dimshuffle(Node):
    """Reorder the axes of the input, inserting ``'x'`` axes of length 1 (Theano's dimshuffle).

    Args:
        axes: a permutation of the input's axes with any number of ``'x'``; e.g. ``[1, 0]``
            transposes a matrix, ``[0, 'x', 1]`` turns ``(n, m)`` into ``(n, 1, m)``.
    """

    def __init__(self, name: str, axes: Sequence[int | str],
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, axes=axes, **shape_config(input_shape))
        if not isinstance(axes, Sequence) or isinstance(axes, str):
            raise self.config_error("axes", f"must be a list of ints and 'x', got {axes!r}")
        self.axes = tuple(a if a == BROADCAST else checks.integer(self, "axes", a, minimum=0)
                          for a in axes)
        self.order = [a for a in self.axes if a != BROADCAST]
        if sorted(self.order) != list(range(len(self.order))):
            raise self.config_error("axes", f"must hold each input axis 0..n-1 exactly once "
                                    f"(plus any 'x'), got {axes!r}")
        self.declared_output_shapes()  # a declared input of another rank fails here

    def rowwise_for(self, in_shapes):
        return self.axes[0] == 0  # the batch axis stays first

    def forward(self, inputs, params, training=False):
        x = inputs["input"]
        if x.dim() != len(self.order):
            raise self.config_error("axes", f"has {len(self.order)} input axes but the input has "
                                    f"{x.dim()}")
        y = x.permute(self.order)
        for position, axis in enumerate(self.axes):
            if axis == BROADCAST:
                y = y.unsqueeze(position)
        return y


class Flatten(Node):
    """Keep the first ``ndim - 1`` axes and flatten the rest into one: the output has ``ndim``
    axes (Theano's ``flatten(ndim)``); ``ndim=2`` turns ``(batch, c, h, w)`` into
    ``(batch, c*h*w)``."""

    def __init__(self, name: str, ndim: int, input_shape: Sequence[int | None] | None = None):
        super().__init__(name, ndim=ndim, **shape_config(input_shape))
        self._spec = FlattenSpec(checks.integer(self, "ndim", ndim, minimum=1))
        self.declared_output_shapes()  # a declared input of too few axes fails here

    def rowwise_for(self, in_shapes):
        return self._spec.ndim >= 2  # ndim 1 flattens the batch axis too

    def forward(self, inputs, params, training=False):
        x, ndim = inputs["input"], self._spec.ndim
        if x.dim() < ndim:
            raise self.config_error("ndim", f"is {ndim} but the input has only {x.dim()} axes")
        return x.flatten(ndim - 1)


def _index(node: Node, entry) -> int | slice:
    """One entry of `Slice.slices` as a Python index."""
    if entry is None:
        return slice(None)
    if isinstance(entry, numbers.Integral) and not isinstance(entry, bool):
        return int(entry)
    if (isinstance(entry, Sequence) and not isinstance(entry, str) and 1 <= len(entry) <= 3
            and all(v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool))
                    for v in entry)):
        if len(entry) == 3 and entry[2] is not None and entry[2] <= 0:
            raise node.config_error("slices", f"step must be positive, got {entry!r}")
        return slice(*entry)
    raise node.config_error("slices", f"entries must be None (whole axis), an int (one index) "
                            f"or [start, stop(, step)], got {entry!r}")


class Slice(Node):
    """Index the input with one entry per leading axis: ``x[slices]`` in NumPy terms.

    Args:
        slices: a list whose entries are None (the whole axis), an int (one index; the axis
            is dropped) or ``[start, stop]`` / ``[start, stop, step]`` (None for an open end).
            The first entry indexes the batch axis; ``[None, [0, 3]]`` keeps columns 0-2.
    """

    def __init__(self, name: str, slices: Sequence,
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, slices=slices, **shape_config(input_shape))
        if not isinstance(slices, Sequence) or isinstance(slices, str):
            raise self.config_error("slices", f"must be a list, got {slices!r}")
        self.index = tuple(_index(self, entry) for entry in slices)
        self.declared_output_shapes()  # an index out of the declared input fails here

    def rowwise_for(self, in_shapes):
        return not self.index or self.index[0] in (slice(None), slice(None, None, 1))

    def forward(self, inputs, params, training=False):
        return inputs["input"][self.index]


class SliceGT(Node):
    """The entries of a vector greater than ``value``, in order (a data-dependent length).

    Shape inference cannot know how many entries pass, so it reports the input's shape: an
    upper bound.
    """

    def __init__(self, name: str, value: float):
        super().__init__(name, value=value)
        self.value = checks.number(self, "value", value)

    def forward(self, inputs, params, training=False):
        x = inputs["input"]
        if x.dim() != 1:
            raise ValueError(f"SliceGT '{self.name}': input must be a vector, got {x.dim()} axes")
        if x.is_meta:  # shape inference: the length depends on the values
            return x
        return x[x > self.value]
