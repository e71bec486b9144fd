"""Activations with explicit backward: the ``act_type`` table of the fast path, and kernels for
the elementwise activation nodes.

Each entry applies the activation in place to a tensor the caller owns (the fresh output of a
matrix product or convolution) and maps the output gradient to the pre-activation gradient with
the same ATen backward formula autograd would use, so both paths agree to rounding.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nodes import activations as nodes
from .kernel import Binding, Kernel, Tensor, accumulate, as_tensor, register

aten = torch.ops.aten


@dataclass(frozen=True)
class Activation:
    """``apply(z) -> y`` (may overwrite ``z``); ``grad(dy, y, z) -> dz``; ``keeps_input``: the
    backward reads ``z``, so ``apply`` must not overwrite it."""

    apply: Callable[[Tensor], Tensor]
    grad: Callable[[Tensor, Tensor, Tensor | None], Tensor]
    keeps_input: bool = False


def _softmax_grad(dy, y, z):
    return torch._softmax_backward_data(dy, y, 1, y.dtype)


def _log_softmax_grad(dy, y, z):
    return torch._log_softmax_backward_data(dy, y, 1, y.dtype)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda z: z, lambda dy, y, z: dy),
    "relu": Activation(torch.relu_, lambda dy, y, z: aten.threshold_backward.default(dy, y, 0)),
    "sigmoid": Activation(torch.sigmoid_,
                          lambda dy, y, z: aten.sigmoid_backward.default(dy, y)),
    "tanh": Activation(torch.tanh_, lambda dy, y, z: aten.tanh_backward.default(dy, y)),
    "softmax": Activation(lambda z: torch.softmax(z, 1), _softmax_grad),
    "log_softmax": Activation(lambda z: torch.log_softmax(z, 1), _log_softmax_grad),
    "softplus": Activation(F.softplus,
                           lambda dy, y, z: aten.softplus_backward.default(dy, z, 1.0, 20.0),
                           keeps_input=True),
    "leaky_relu": Activation(
        lambda z: F.leaky_relu_(z, 0.01),
        lambda dy, y, z: aten.leaky_relu_backward.default(dy, y, 0.01, True)),
    "elu": Activation(lambda z: F.elu_(z),
                      lambda dy, y, z: aten.elu_backward.default(dy, 1.0, 1, 1, True, y)),
    "gelu": Activation(F.gelu, lambda dy, y, z: aten.gelu_backward.default(dy, z),
                       keeps_input=True),
}
ACTIVATIONS["soft_relu"] = ACTIVATIONS["softplus"]


def activation_of(node) -> Activation | None:
    """The entry for ``node.config['act_type']``, or None when the fast path lacks it.

    Only names whose reference function is the one this table assumes are accepted, so a
    change to the node library's table falls back to the reference path instead of diverging.
    """
    name = node.config.get("act_type", "linear")
    known = nodes.ACTIVATIONS.get(name)
    if name not in ACTIVATIONS or known is None or not _same_function(name, known):
        return None
    return ACTIVATIONS[name]


def _same_function(name: str, function) -> bool:
    probe = torch.linspace(-3.0, 3.0, 24).reshape(2, 12)
    expected = ACTIVATIONS[name].apply(probe.clone())
    try:
        got = function(probe.clone())
    except (RuntimeError, TypeError):
        return False
    return got.shape == expected.shape and bool(torch.allclose(got, expected, atol=1e-6))


class _Elementwise(Kernel):
    """An activation node: ``output = act(input)``."""

    act_name: str = ""
    grad_ports = frozenset({"input"})

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.act = ACTIVATIONS[self.act_name]

    def forward(self, v, training):
        # The input belongs to someone else: apply out of place.
        v[self.y] = self.act.apply(v[self.x].clone())

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            y = v[self.y]
            accumulate(g, self.x, self.act.grad(as_tensor(dy, y), y, v[self.x]))


@register(nodes.Sigmoid)
class Sigmoid(_Elementwise):
    act_name = "sigmoid"

    def forward(self, v, training):
        v[self.y] = torch.sigmoid(v[self.x])


@register(nodes.Tanh)
class Tanh(_Elementwise):
    act_name = "tanh"

    def forward(self, v, training):
        v[self.y] = torch.tanh(v[self.x])


@register(nodes.RectifiedLinear)
class RectifiedLinear(_Elementwise):
    act_name = "relu"

    def forward(self, v, training):
        v[self.y] = torch.relu(v[self.x])


@register(nodes.SoftRectifiedLinear)
class SoftRectifiedLinear(_Elementwise):
    act_name = "softplus"

    def __init__(self, b: Binding):
        super().__init__(b)
        self.knee = float(b.node.knee)

    def forward(self, v, training):
        v[self.y] = F.softplus(v[self.x], beta=self.knee)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            x = v[self.x]
            accumulate(g, self.x, aten.softplus_backward.default(as_tensor(dy, x), x, self.knee,
                                                                 20.0))


class _AlongAxis(_Elementwise):
    """Softmax and log-softmax: covered along axis 1 of a 2-D input."""

    @classmethod
    def supports(cls, node, in_shapes):
        shape = in_shapes.get("input")
        if getattr(node, "axis", 1) != 1 or shape is None or len(shape) != 2:
            return "the fast kernel covers axis 1 of a 2-D input only"
        return None


@register(nodes.Softmax)
class Softmax(_AlongAxis):
    act_name = "softmax"

    def forward(self, v, training):
        v[self.y] = torch.softmax(v[self.x], 1)


@register(nodes.LogSoftmax)
class LogSoftmax(_AlongAxis):
    act_name = "log_softmax"

    def forward(self, v, training):
        v[self.y] = torch.log_softmax(v[self.x], 1)
