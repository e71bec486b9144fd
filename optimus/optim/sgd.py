"""Stochastic gradient descent, optionally with momentum (the graph's default step rule)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .base import StepRule


class SGD(StepRule):
    """``param -= lr * grad``, plus momentum / Nesterov / L2 weight decay when given
    (`torch.optim.SGD`).

    Args:
        momentum: the velocity's decay, 0 for plain SGD.
        nesterov: use Nesterov momentum (needs ``momentum > 0``).
        weight_decay: L2 penalty added to the gradient (``grad + weight_decay * param``).
        dampening: scales the gradient entering the velocity (``1 - dampening``).
    """

    def __init__(self, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0):
        momentum = self.check_number("momentum", momentum)
        weight_decay = self.check_number("weight_decay", weight_decay)
        dampening = self.check_number("dampening", dampening, 0.0, 1.0, high_inclusive=True)
        if not isinstance(nesterov, bool):
            raise ConfigError(f"SGD: nesterov must be true or false, got {nesterov!r}",
                              field="nesterov")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ConfigError("SGD: nesterov=True needs momentum > 0 and dampening = 0",
                              field="nesterov")
        config = {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}
        if dampening:  # only when used, so definitions written before it stay unchanged
            config["dampening"] = dampening
        super().__init__(**config)

    def build(self, groups: Sequence[dict]) -> torch.optim.Optimizer:
        return torch.optim.SGD(groups, lr=0.0, foreach=True, **self.config)
