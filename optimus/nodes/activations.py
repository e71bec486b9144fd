"""Elementwise activations: the ``act_type`` table shared by parametric nodes, and the
activation nodes themselves (Sigmoid, Tanh, RectifiedLinear, SoftRectifiedLinear, Softmax,
LogSoftmax)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import checks
from .base import Node, Tensor, keeps_rows

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: F.softmax(x, dim=1),
    "log_softmax": lambda x: F.log_softmax(x, dim=1),
    "softplus": F.softplus,
    "soft_relu": F.softplus,  # the original library's name: log(1 + exp(x))
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "gelu": F.gelu,
}

# Activations that never decrease, so ``act(max_pool(x)) == max_pool(act(x))``: a node may pool
# first and apply the activation to the smaller tensor.
MONOTONE = frozenset({"linear", "relu", "sigmoid", "tanh", "softplus", "soft_relu",
                      "leaky_relu", "elu"})


def activation(node: Node, act_type: str) -> Callable[[Tensor], Tensor]:
    """The function for ``act_type``; an unknown name is a ConfigError naming the node."""
    return ACTIVATIONS[checks.choice(node, "act_type", act_type, tuple(ACTIVATIONS))]


class Sigmoid(Node):
    """The logistic function ``1 / (1 + exp(-x))``, elementwise."""

    always_rowwise = True

    def __init__(self, name: str):
        super().__init__(name)

    def forward(self, inputs, params, training=False):
        return torch.sigmoid(inputs["input"])


class Tanh(Node):
    """The hyperbolic tangent, elementwise."""

    always_rowwise = True

    def __init__(self, name: str):
        super().__init__(name)

    def forward(self, inputs, params, training=False):
        return torch.tanh(inputs["input"])


class RectifiedLinear(Node):
    """Half-wave rectification ``max(x, 0)``, elementwise."""

    always_rowwise = True

    def __init__(self, name: str):
        super().__init__(name)

    def forward(self, inputs, params, training=False):
        return F.relu(inputs["input"])


class SoftRectifiedLinear(Node):
    """Smooth rectification ``log(1 + exp(knee * x)) / knee``, elementwise.

    Args:
        knee: sharpness of the bend at 0 (> 0); larger is closer to ``max(x, 0)``.
    """

    always_rowwise = True

    def __init__(self, name: str, knee: float = 1.0):
        super().__init__(name, knee=knee)
        self.knee = checks.number(self, "knee", knee, minimum=0.0, strict=True)

    def forward(self, inputs, params, training=False):
        return F.softplus(inputs["input"], beta=self.knee)


class Softmax(Node):
    """Softmax over ``axis`` (default 1, the class axis of a ``(batch, classes)`` input)."""

    def __init__(self, name: str, axis: int = 1):
        super().__init__(name, axis=axis)
        self.axis = checks.integer(self, "axis", axis)

    def rowwise_for(self, in_shapes):
        return keeps_rows(self.axis, in_shapes.get("input"))

    def forward(self, inputs, params, training=False):
        return F.softmax(inputs["input"], dim=self.axis)


class LogSoftmax(Node):
    """``log(softmax(x))`` over ``axis`` (default 1), computed stably from logits."""

    def __init__(self, name: str, axis: int = 1):
        super().__init__(name, axis=axis)
        self.axis = checks.integer(self, "axis", axis)

    def rowwise_for(self, in_shapes):
        return keeps_rows(self.axis, in_shapes.get("input"))

    def forward(self, inputs, params, training=False):
        return F.log_softmax(inputs["input"], dim=self.axis)
