"""Adagrad: per-coordinate steps shrinking with the sum of past squared gradients."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import StepRule


class Adagrad(StepRule):
    """Adagrad (Duchi et al., 2011) as `torch.optim.Adagrad`.

    Args:
        lr_decay: the step is ``lr / (1 + (t - 1) * lr_decay)`` at step t.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: starting value of the sum of squared gradients.
        eps: added to the denominator for numerical stability.
    """

    def __init__(self, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(
            lr_decay=self.check_number("lr_decay", lr_decay),
            weight_decay=self.check_number("weight_decay", weight_decay),
            initial_accumulator_value=self.check_number("initial_accumulator_value",
                                                        initial_accumulator_value),
            eps=self.check_number("eps", eps, low_inclusive=False))

    def build(self, groups: Sequence[dict]) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(groups, lr=0.0, **self.config)
