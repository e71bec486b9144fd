"""Elementwise arithmetic and normalisation: Log, Sqrt, Power, Normalize, NormalizeDim.

Each takes an optional ``input_shape``: then its ``output.shape`` (the same) is known when the
node is built."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from . import checks
from .base import Node, Tensor, keeps_rows, shape_config

NORM_MODES = ("l1", "l2")


def _safe_norm(x: Tensor, mode: str, dim, keepdim: bool = False) -> Tensor:
    """The l1 or l2 norm over ``dim``, with 0 replaced by 1 (so an all-zero input stays 0)."""
    norm = torch.linalg.vector_norm(x, ord=1 if mode == "l1" else 2, dim=dim, keepdim=keepdim)
    return norm + (norm == 0).to(norm.dtype)


class Log(Node):
    """``log(gain * x + epsilon)``, elementwise.

    Args:
        epsilon: added inside the log to keep it finite at 0.
        gain: scales the input before the log.
    """

    always_rowwise = True
    preserves_shape = True

    def __init__(self, name: str, epsilon: float = 0.0, gain: float = 1.0,
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, epsilon=epsilon, gain=gain, **shape_config(input_shape))
        self.epsilon = checks.number(self, "epsilon", epsilon, minimum=0.0)
        self.gain = checks.number(self, "gain", gain)

    def forward(self, inputs, params, training=False):
        return torch.log(self.gain * inputs["input"] + self.epsilon)


class Sqrt(Node):
    """The square root, elementwise."""

    always_rowwise = True
    preserves_shape = True

    def __init__(self, name: str, input_shape: Sequence[int | None] | None = None):
        super().__init__(name, **shape_config(input_shape))

    def forward(self, inputs, params, training=False):
        return torch.sqrt(inputs["input"])


class Power(Node):
    """``x ** exponent``, elementwise."""

    always_rowwise = True
    preserves_shape = True

    def __init__(self, name: str, exponent: float, input_shape: Sequence[int | None] | None = None):
        super().__init__(name, exponent=exponent, **shape_config(input_shape))
        self.exponent = checks.number(self, "exponent", exponent)

    def forward(self, inputs, params, training=False):
        return torch.pow(inputs["input"], self.exponent)


class Normalize(Node):
    """Scale each sample to unit norm: ``scale_factor * x / ||x||``, the norm over all axes but
    the first; an all-zero sample is left at zero.

    Args:
        mode: 'l1' or 'l2'.
        scale_factor: the norm each sample ends with.
    """

    always_rowwise = True
    preserves_shape = True

    def __init__(self, name: str, mode: str = "l2", scale_factor: float = 1.0,
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, mode=mode, scale_factor=scale_factor, **shape_config(input_shape))
        self.mode = checks.choice(self, "mode", mode, NORM_MODES)
        self.scale_factor = checks.number(self, "scale_factor", scale_factor)

    def static_shape_ok(self, shape):
        return len(shape) >= 2

    def forward(self, inputs, params, training=False):
        x = inputs["input"]
        norm = _safe_norm(x.flatten(1), self.mode, dim=1)
        return self.scale_factor * x / norm.reshape((-1,) + (1,) * (x.dim() - 1))


class NormalizeDim(Node):
    """Divide ``x`` by its norm along ``axis`` (0 norms count as 1).

    Args:
        axis: the axis normalised, e.g. 1 for the features of ``(batch, features)``.
        mode: 'l1' or 'l2'.
    """

    preserves_shape = True

    def __init__(self, name: str, axis: int, mode: str = "l2",
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, axis=axis, mode=mode, **shape_config(input_shape))
        self.axis = checks.integer(self, "axis", axis)
        self.mode = checks.choice(self, "mode", mode, NORM_MODES)
        checks.within(self, "axis", self.axis)

    def rowwise_for(self, in_shapes):
        return keeps_rows(self.axis, in_shapes.get("input"))

    def static_shape_ok(self, shape):
        return -len(shape) <= self.axis < len(shape)

    def forward(self, inputs, params, training=False):
        x = inputs["input"]
        return x / _safe_norm(x, self.mode, dim=self.axis, keepdim=True)
