"""Nodes combining several inputs: Add, Concatenate, Stack, Product, Divide, CrossProduct."""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from .. import limits
from . import checks
from .base import Node, Shape, keeps_rows


def _same_rank(in_shapes: dict[str, Shape | None]) -> bool:
    """Elementwise nodes are row-wise unless known input ranks differ (then broadcasting
    could align the batch axis of one input with another axis of the other)."""
    ranks = {len(s) for s in in_shapes.values() if s is not None}
    return len(ranks) <= 1 and 0 not in ranks


class _MultiInput(Node, register=False):
    """A node with ``num_inputs`` input ports ``input_0 ... input_{n-1}`` (as the original)."""

    input_names = ("input_0", "input_1")
    ports_doc = "input_0 … input_{num_inputs-1}"

    def __init__(self, name: str, num_inputs: int = 2, **config):
        # The port names must exist before the base constructor declares the ports.
        valid = (isinstance(num_inputs, numbers.Integral) and not isinstance(num_inputs, bool)
                 and num_inputs >= 1)
        if valid:
            limits.check_ports(name if isinstance(name, str) else repr(name), int(num_inputs))
        self.input_names = tuple(f"input_{i}" for i in range(num_inputs)) if valid else ()
        super().__init__(name, num_inputs=num_inputs, **config)
        self.num_inputs = checks.integer(self, "num_inputs", num_inputs, minimum=1)

    def tensors(self, inputs) -> list:
        return [inputs[port] for port in self.input_names]


class Add(_MultiInput):
    """The elementwise sum of ``num_inputs`` inputs (broadcasting as NumPy does)."""

    def __init__(self, name: str, num_inputs: int = 2):
        super().__init__(name, num_inputs)

    def rowwise_for(self, in_shapes):
        return _same_rank(in_shapes)

    def forward(self, inputs, params, training=False):
        first, *rest = self.tensors(inputs)
        for x in rest:
            first = first + x
        return first


class Concatenate(_MultiInput):
    """Join ``num_inputs`` inputs along an existing ``axis`` (default: the last)."""

    def __init__(self, name: str, num_inputs: int = 2, axis: int = -1):
        super().__init__(name, num_inputs, axis=axis)
        self.axis = checks.integer(self, "axis", axis)

    def rowwise_for(self, in_shapes):
        return all(keeps_rows(self.axis, in_shapes.get(p)) for p in self.input_names)

    def forward(self, inputs, params, training=False):
        return torch.cat(self.tensors(inputs), dim=self.axis)


class Stack(_MultiInput):
    """Stack ``num_inputs`` same-shaped inputs along a new first axis, then optionally reorder
    the axes.

    Args:
        axes: None, or a permutation of the output's axes: ``[1, 0, 2]`` stacks two
            ``(batch, n)`` inputs into ``(batch, 2, n)``.
    """

    def __init__(self, name: str, num_inputs: int = 2, axes: Sequence[int] | None = None):
        super().__init__(name, num_inputs, axes=axes)
        perm = checks.axes(self, "axes", axes)
        if isinstance(perm, int) or (perm is not None and sorted(perm) != list(range(len(perm)))):
            raise self.config_error("axes", f"must be None or a permutation of 0..n-1, "
                                    f"got {axes!r}")
        self.axes = perm

    def rowwise_for(self, in_shapes):
        return self.axes is not None and self.axes[0] == 1  # the inputs' batch axis first

    def forward(self, inputs, params, training=False):
        y = torch.stack(self.tensors(inputs), dim=0)
        if self.axes is not None:
            if len(self.axes) != y.dim():
                raise self.config_error("axes", f"has {len(self.axes)} entries but the stacked "
                                        f"output has {y.dim()} axes")
            y = y.permute(self.axes)
        return y


class _Binary(Node, register=False):
    input_names = ("input_a", "input_b")

    def __init__(self, name: str):
        super().__init__(name)

    def rowwise_for(self, in_shapes):
        return _same_rank(in_shapes)


class Product(_Binary):
    """The elementwise product ``input_a * input_b`` (see Multiply for learned weights)."""

    def forward(self, inputs, params, training=False):
        return inputs["input_a"] * inputs["input_b"]


class Divide(Node):
    """``numerator / denominator`` elementwise, where a zero denominator counts as 1."""

    input_names = ("numerator", "denominator")

    def __init__(self, name: str):
        super().__init__(name)

    def rowwise_for(self, in_shapes):
        return _same_rank(in_shapes)

    def forward(self, inputs, params, training=False):
        den = inputs["denominator"]
        return inputs["numerator"] / (den + (den == 0).to(den.dtype))


class CrossProduct(_Binary):
    """The outer product of each pair of rows, flattened: ``(batch, n)`` and ``(batch, m)``
    give ``(batch, n*m)`` with ``out[b, i*m + j] = a[b, i] * b[b, j]``."""

    def forward(self, inputs, params, training=False):
        a, b = inputs["input_a"], inputs["input_b"]
        if a.dim() != 2 or b.dim() != 2:
            raise ValueError(f"CrossProduct '{self.name}': inputs must be (batch, n), got "
                             f"{a.dim()} and {b.dim()} axes")
        return (a.unsqueeze(2) * b.unsqueeze(1)).flatten(1)
