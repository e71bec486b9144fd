"""Kernels of the nodes that only reshape."""
from __future__ import annotations

from ..nodes.shape import Flatten as FlattenNode
from .kernel import Binding, Kernel, accumulate, register


@register(FlattenNode)
class Flatten(Kernel):
    """Flatten the axes from ``ndim - 1`` on (a view when the input is contiguous)."""

    grad_ports = frozenset({"input"})

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.start = b.node.spec.ndim - 1

    def forward(self, v, training):
        v[self.y] = v[self.x].flatten(self.start)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            accumulate(g, self.x, dy.reshape(v[self.x].shape))
