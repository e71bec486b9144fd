"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from .base import StepRule


class Adam(StepRule):
    """Adam (Kingma & Ba, 2015) as `torch.optim.Adam`; the learning rate comes from the graph's
    learning-rate Inputs (Flux's ``ADAM(3e-3)`` is ``Adam()`` with ``learning_rate=3e-3``).

    Args:
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty added to the gradient (AdamW decouples it instead).
        amsgrad: use the running maximum of the second moment (AMSGrad).
    """

    torch_class: type[torch.optim.Optimizer] = torch.optim.Adam

    def __init__(self, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
            raise ConfigError(f"{type(self).__name__}: betas must be two numbers in [0, 1), "
                              f"got {betas!r}", field="betas")
        betas = (self.check_number("betas", betas[0], 0.0, 1.0),
                 self.check_number("betas", betas[1], 0.0, 1.0))
        if not isinstance(amsgrad, bool):
            raise ConfigError(f"{type(self).__name__}: amsgrad must be true or false, got "
                              f"{amsgrad!r}", field="amsgrad")
        super().__init__(betas=betas, eps=self.check_number("eps", eps, low_inclusive=False),
                         weight_decay=self.check_number("weight_decay", weight_decay),
                         amsgrad=amsgrad)

    def build(self, groups: Sequence[dict]) -> torch.optim.Optimizer:
        return self.torch_class(groups, lr=0.0, **self.config)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["betas"] = list(config["betas"])
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as `torch.optim.AdamW`:
    each step also shrinks parameters by ``lr * weight_decay * param``."""

    torch_class = torch.optim.AdamW

    def __init__(self, betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False):
        super().__init__(betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
