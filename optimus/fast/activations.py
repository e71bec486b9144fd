"""Kernels of the activation nodes, and `bind`: an activation spec as the two functions a
kernel calls.

The activations are those of `optimus.activations` (the one table): a kernel applies the
entry's in-place function to a tensor it owns (the fresh output of a matrix product or a
convolution) and maps the output gradient to the pre-activation gradient with the entry's
``grad``, the formula autograd uses, so both paths agree to rounding.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..nodes import activations as nodes
from ..nodes.specs import ActivationSpec
from .kernel import Binding, Kernel, Tensor, accumulate, as_tensor, register


@dataclass(frozen=True)
class Bound:
    """An activation with its parameters bound: ``apply(z) -> y`` (may overwrite ``z``);
    ``grad(dy, y, z) -> dz``; ``keeps_input``: the backward reads ``z``, so ``apply`` must
    not overwrite it (and the kernel keeps it)."""

    apply: Callable[[Tensor], Tensor]
    grad: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    keeps_input: bool


def bind(spec: ActivationSpec) -> Bound:
    """The functions of ``spec``'s table entry with its ``axis`` / ``beta`` bound."""
    entry, params = spec.entry, spec.params
    if not params:
        return Bound(entry.inplace, entry.grad, entry.keeps_input)
    return Bound(partial(entry.inplace, **params), partial(entry.grad, **params),
                 entry.keeps_input)


def _axis(node, in_shapes) -> int | None:
    """The activation axis of ``node`` as a non-negative int, or None when unknown."""
    shape = in_shapes.get("input")
    axis = node.spec.axis
    if shape is None:
        return None
    if axis < 0:
        axis += len(shape)
    return axis if 0 <= axis < len(shape) else None


@register(nodes.Sigmoid, nodes.Tanh, nodes.RectifiedLinear, nodes.SoftRectifiedLinear,
          nodes.Softmax, nodes.LogSoftmax)
class Activation(Kernel):
    """An activation node: ``output = act(input)``, by its spec (softmax and log-softmax
    along any axis of an input of known rank)."""

    grad_ports = frozenset({"input"})

    @classmethod
    def supports(cls, node, in_shapes):
        if "axis" in node.spec.params and _axis(node, in_shapes) is None:
            return f"axis {node.spec.axis} is not an axis of its input"
        return None

    def __init__(self, b: Binding):
        super().__init__(b)
        spec = b.node.spec
        if "axis" in spec.params:
            spec = ActivationSpec(spec.name, _axis(b.node, b.in_shapes), spec.beta)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.act = bind(spec)
        self.function = partial(spec.entry.function, **spec.params)

    def forward(self, v, training):
        # The input belongs to someone else: out of place.
        v[self.y] = self.function(v[self.x])

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            y = v[self.y]
            accumulate(g, self.x, self.act.grad(as_tensor(dy, y), y, v[self.x]))
