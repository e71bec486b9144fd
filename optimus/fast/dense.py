"""The fully-connected kernel: ``act(flatten(x) @ W + b)`` with its backward written out.

With plain SGD the weight update is fused into the gradient's matrix product
(``W.addmm_(x.T, dz, alpha=-lr)``): the weight gradient is never materialised, which halves
the memory traffic over the largest tensor of an MLP step.
"""
from __future__ import annotations

import torch

from ..nodes.affine import Affine as AffineNode
from .activations import ACTIVATIONS, activation_of
from .kernel import Binding, Kernel, accumulate, register


@register(AffineNode)
class Affine(Kernel):
    """Kernel of `optimus.Affine`; a fusion may override its activation (``act='linear'``)."""

    grad_ports = frozenset({"input", "weights", "bias"})
    fusable = frozenset({"weights", "bias"})

    @classmethod
    def supports(cls, node, in_shapes):
        return activation_of(node) is not None

    def __init__(self, b: Binding):
        super().__init__(b)
        act = b.options.get("act")
        self.act = ACTIVATIONS[act] if act else activation_of(b.node)
        self.x, self.w, self.b = b.ins["input"], b.ins["weights"], b.ins["bias"]
        self.y = b.outs["output"]
        self.flat = len(b.in_shapes["input"]) > 2
        # The node reshapes its 2-D result to output_shape[1:] when that has several axes.
        out_dims = tuple(getattr(b.node, "out_dims", ()))
        self.out_dims = out_dims if len(out_dims) > 1 and not b.options.get("act") else None
        self.z = b.private() if b.saves and self.act.keeps_input else None
        self.dx = "input" in b.need
        self.dw, self.db = "weights" in b.need, "bias" in b.need
        self.fw, self.fb = b.fused.get("weights"), b.fused.get("bias")

    def forward(self, v, training):
        x = v[self.x]
        if self.flat:
            x = x.flatten(1)
        z = torch.addmm(v[self.b], x, v[self.w])
        if self.z is not None:
            v[self.z] = z
        y = self.act.apply(z)
        v[self.y] = y if self.out_dims is None else y.view(y.shape[0], *self.out_dims)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        y = v[self.y]
        if self.out_dims is not None:
            dy, y = dy.reshape(dy.shape[0], -1), y.view(y.shape[0], -1)
        dz = self.act.grad(dy, y, None if self.z is None else v[self.z])
        x, w = v[self.x], v[self.w]
        if self.dx:  # before any in-place update of W
            dx = torch.mm(dz, w.t())
            accumulate(g, self.x, dx.view(x.shape) if self.flat else dx)
        if self.flat:
            x = x.flatten(1)
        if self.fw is not None:
            w.addmm_(x.t(), dz, alpha=-lrs[self.fw])
        elif self.dw:
            accumulate(g, self.w, torch.mm(x.t(), dz))
        if self.fb is not None:
            v[self.b].sub_(dz.sum(0), alpha=lrs[self.fb])
        elif self.db:
            accumulate(g, self.b, dz.sum(0))
