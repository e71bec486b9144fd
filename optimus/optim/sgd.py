"""Stochastic gradient descent, optionally with momentum (the graph's default step rule)."""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import StepRule


class SGD(StepRule):
    """``param -= lr * grad`` (plus momentum / Nesterov / weight decay when given)."""

    def __init__(self, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        for field, value in (("momentum", momentum), ("weight_decay", weight_decay)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"SGD: {field} must be a number >= 0, got {value!r}",
                                  field=field)
        if nesterov and momentum <= 0:
            raise ConfigError("SGD: nesterov=True needs momentum > 0", field="nesterov")
        super().__init__(momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def build(self, groups):
        return torch.optim.SGD(groups, lr=0.0, foreach=True, **self.config)
