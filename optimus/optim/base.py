"""`StepRule`: how a graph turns gradients into parameter updates, on top of `torch.optim`.

A step rule is plain config (saved in the graph's JSON) that builds a `torch.optim.Optimizer`
over param groups, one group per learning-rate Input wired in the graph's ``updates``. Before
each step the graph sets every group's ``lr`` to the value its Input received in the call, so
each parameter moves by its own Input's value, and unwired parameters never move.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import registry


class StepRule:
    """Base class: subclasses register themselves and define `build`."""

    def __init_subclass__(cls, register: bool = True, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if register:
            registry.register("step_rule", cls)

    def __init__(self, **config: Any):
        self.config = config

    def get_config(self) -> dict[str, Any]:
        """The constructor kwargs (what `save` writes under ``step_rule``)."""
        return dict(self.config)

    def build(self, groups: Sequence[dict]) -> torch.optim.Optimizer:
        """A torch optimizer over ``groups`` (dicts with ``params`` and ``lr``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"
