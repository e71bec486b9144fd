"""Elementwise activations: the ``act_type`` table shared by parametric nodes, and the
activation nodes themselves."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .base import Node, Tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: F.softmax(x, dim=1),
    "softplus": F.softplus,
    "elu": F.elu,
    "gelu": F.gelu,
}


def activation(node: Node, act_type: str) -> Callable[[Tensor], Tensor]:
    """The function for ``act_type``; an unknown name is a ConfigError naming the node."""
    if act_type not in ACTIVATIONS:
        raise node.config_error("act_type", f"{act_type!r} is unknown; use one of "
                                f"{', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[act_type]


class Softmax(Node):
    """Softmax over axis 1 (the class axis of a ``(batch, classes)`` input)."""

    def __init__(self, name: str):
        super().__init__(name)

    def forward(self, inputs, params, training=False):
        return F.softmax(inputs["input"], dim=1)
