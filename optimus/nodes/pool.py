"""Spatial pooling of ``(batch, maps, height, width)`` inputs: MaxPool, AvgPool."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from ..ports import as_shape
from . import checks
from .base import Node
from .specs import PoolSpec


class _Pool(Node, register=False):
    """Pooling over ``pool_shape`` windows moved by ``stride``, after zero ``padding``.

    Args:
        input_shape: ``(batch, maps, height, width)``, or None to take it from the wiring.
        pool_shape: the window, an int or a pair.
        stride: an int or a pair; None (the default) is ``pool_shape`` (non-overlapping).
        padding: pixels per side, an int or a pair, at most half the window.

    Partial windows at the far border are dropped (floor), as in PyTorch, Flux and MXNet.
    """

    always_rowwise = True
    mode = ""  # 'max' or 'avg'
    _spec: PoolSpec

    def __init__(self, name: str, input_shape: Sequence[int | None] | None,
                 pool_shape: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0):
        super().__init__(name, input_shape=input_shape, pool_shape=pool_shape, stride=stride,
                         padding=padding)
        shape = as_shape(input_shape, name, "input_shape", scalar_ok=False)
        if shape is not None and len(shape) != 4:
            raise self.config_error("input_shape", f"must be (batch, maps, height, width), "
                                    f"got {input_shape!r}")
        window = checks.pair(self, "pool_shape", pool_shape)
        step = window if stride is None else checks.pair(self, "stride", stride)
        pad = checks.pair(self, "padding", padding, minimum=0)
        if any(p > k // 2 for p, k in zip(pad, window)):
            raise self.config_error("padding", f"must be at most half of pool_shape "
                                    f"{window}, got {padding!r}")
        self._spec = PoolSpec(self.mode, window, step, pad)
        self.declared_output_shapes()  # a window larger than the padded input fails here


class MaxPool(_Pool):
    """Max-pooling: the maximum of each window (padding counts as -inf)."""

    mode = "max"

    def forward(self, inputs, params, training=False):
        spec = self._spec
        return F.max_pool2d(inputs["input"], spec.window, spec.stride, spec.padding)


class AvgPool(_Pool):
    """Average-pooling: the mean of each window (padded zeros count, as in PyTorch)."""

    mode = "avg"

    def forward(self, inputs, params, training=False):
        spec = self._spec
        return F.avg_pool2d(inputs["input"], spec.window, spec.stride, spec.padding)
