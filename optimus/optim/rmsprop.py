"""RMSProp: divide each step by a running root-mean-square of the gradient."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from .base import StepRule


class RMSProp(StepRule):
    """RMSProp (Tieleman & Hinton, 2012) as `torch.optim.RMSprop`.

    Args:
        alpha: decay rate of the running mean of squared gradients.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum of the scaled step, 0 for none.
        centered: normalise by the gradient's estimated variance instead of its second moment.
    """

    def __init__(self, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        if not isinstance(centered, bool):
            raise ConfigError(f"RMSProp: centered must be true or false, got {centered!r}",
                              field="centered")
        super().__init__(alpha=self.check_number("alpha", alpha, 0.0, 1.0, high_inclusive=True),
                         eps=self.check_number("eps", eps, low_inclusive=False),
                         weight_decay=self.check_number("weight_decay", weight_decay),
                         momentum=self.check_number("momentum", momentum),
                         centered=centered)

    def build(self, groups: Sequence[dict]) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(groups, lr=0.0, **self.config)
