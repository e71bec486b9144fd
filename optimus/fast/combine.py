"""Kernels of nodes combining several inputs."""
from __future__ import annotations

from ..nodes.combine import Add as AddNode
from .kernel import Binding, Kernel, accumulate, register, unbroadcast


@register(AddNode)
class Add(Kernel):
    """``input_0 + input_1 + ...`` (broadcasting); the gradient flows to every input."""

    passes_grad = True  # the planner relies on it only for scalar sums (losses)

    def __init__(self, b: Binding):
        super().__init__(b)
        self.xs = [b.ins[port] for port in b.node.input_names]
        self.needed = [b.ins[port] for port in b.node.input_names if port in b.need]
        self.y = b.outs["output"]

    @classmethod
    def differentiable(cls, node) -> frozenset[str]:
        return frozenset(node.input_names)

    def forward(self, v, training):
        first, *rest = (v[x] for x in self.xs)
        for x in rest:
            first = first + x
        v[self.y] = first

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        for slot in self.needed:
            accumulate(g, slot, unbroadcast(dy, v[slot].shape))
