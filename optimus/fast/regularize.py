"""Kernels of the nodes that act only while training."""
from __future__ import annotations

import torch

from ..nodes.regularize import GaussianNoise as GaussianNoiseNode
from .kernel import Binding, Kernel, accumulate, register


@register(GaussianNoiseNode)
class GaussianNoise(Kernel):
    """``x + std * N(0, 1)`` in training calls, the identity otherwise; the noise is drawn
    exactly as the node draws it, so both paths consume the same random numbers."""

    grad_ports = frozenset({"input"})

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.std = b.node.spec.std

    def forward(self, v, training):
        x = v[self.x]
        if training:  # x + std * noise, as the node computes it, in the noise's own buffer
            v[self.y] = torch.randn_like(x).mul_(self.std).add_(x)
        else:
            v[self.y] = x

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            accumulate(g, self.x, dy)
