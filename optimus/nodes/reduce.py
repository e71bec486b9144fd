"""Reductions and index selection: Sum, Mean, Max, Min, L1Magnitude, L2Magnitude,
SelectIndex, MaxNotIndex, MinNotIndex."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from . import checks
from .base import Node, Tensor, keeps_rows, shape_config


class _Reduce(Node, register=False):
    """A reduction over ``axis``: None (every axis, a scalar), an int or a list of ints.

    ``input_shape`` (optional) makes ``output.shape`` known when the node is built.
    """

    def __init__(self, name: str, axis: int | list[int] | None = None,
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, axis=axis, **shape_config(input_shape))
        self.axis = checks.axes(self, "axis", axis)
        checks.within(self, "axis", self.axis)

    def rowwise_for(self, in_shapes):
        return keeps_rows(self.axis, in_shapes.get("input"))

    def reduce(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, inputs, params, training=False):
        return self.reduce(inputs["input"])


class Sum(_Reduce):
    """The sum of the input over ``axis`` (None: every axis)."""

    def reduce(self, x):
        return x.sum() if self.axis is None else x.sum(dim=self.axis)


class Mean(_Reduce):
    """The mean of the input over ``axis`` (None: every axis)."""

    def reduce(self, x):
        return x.mean() if self.axis is None else x.mean(dim=self.axis)


class Max(_Reduce):
    """The maximum of the input over ``axis`` (None: every axis); ties share the gradient."""

    def reduce(self, x):
        return x.amax() if self.axis is None else x.amax(dim=self.axis)


class Min(_Reduce):
    """The minimum of the input over ``axis`` (None: every axis); ties share the gradient."""

    def reduce(self, x):
        return x.amin() if self.axis is None else x.amin(dim=self.axis)


class L1Magnitude(_Reduce):
    """``sum(|x|)`` over ``axis`` (None: every axis)."""

    def reduce(self, x):
        return torch.linalg.vector_norm(x, ord=1, dim=self.axis)


class L2Magnitude(_Reduce):
    """``sqrt(sum(x ** 2))`` over ``axis`` (None: every axis); its gradient at 0 is 0."""

    def reduce(self, x):
        return torch.linalg.vector_norm(x, ord=2, dim=self.axis)


class _Indexed(Node, register=False):
    """A node reading one column per row of a ``(batch, k)`` input, chosen by ``index``."""

    input_names = ("input", "index")
    input_dtypes = {"index": "int64"}
    index_ports = {"index": ("input", 1)}
    always_rowwise = True

    def __init__(self, name: str):
        super().__init__(name)

    def columns(self, inputs) -> tuple[Tensor, Tensor]:
        x = inputs["input"]
        if x.dim() != 2:
            raise ValueError(f"{type(self).__name__} '{self.name}': input must be "
                             f"(batch, k), got {x.dim()} axes")
        return x, inputs["index"].long().unsqueeze(1)


class SelectIndex(_Indexed):
    """``input[i, index[i]]`` for each row ``i``: ``(batch, k)``, ``(batch,)`` -> ``(batch,)``."""

    def forward(self, inputs, params, training=False):
        x, index = self.columns(inputs)
        return x.gather(1, index).squeeze(1)


class MaxNotIndex(_Indexed):
    """The maximum of each row of ``input`` leaving out column ``index[i]``.

    The original library set the left-out entry to -1, which is only right for inputs above
    -1; here it is left out exactly.
    """

    def forward(self, inputs, params, training=False):
        x, index = self.columns(inputs)
        mask = torch.zeros_like(x, dtype=torch.bool).scatter(1, index, True)
        return x.masked_fill(mask, float("-inf")).amax(dim=1)


class MinNotIndex(_Indexed):
    """The minimum of each row of ``input`` leaving out column ``index[i]``.

    The original library set the left-out entry to ``2 * x + 1``, which is only right when
    that exceeds the row's other entries; here it is left out exactly.
    """

    def forward(self, inputs, params, training=False):
        x, index = self.columns(inputs)
        mask = torch.zeros_like(x, dtype=torch.bool).scatter(1, index, True)
        return x.masked_fill(mask, float("inf")).amin(dim=1)
