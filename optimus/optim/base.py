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
from ..errors import ConfigError


class StepRule:
    """Base class: subclasses register themselves and define `build`.

    A subclass's constructor takes JSON-typed keyword arguments (numbers, booleans, lists),
    checks them with `check_number`, and passes them to ``super().__init__`` so that
    `get_config` returns them; `build` hands them to the matching `torch.optim` class.
    """

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
        """A torch optimizer over ``groups`` (dicts with ``params``, ``lr`` and ``name``)."""
        raise NotImplementedError(f"{type(self).__name__} must define build(groups)")

    def check_number(self, field: str, value: Any, low: float = 0.0, high: float | None = None,
                     low_inclusive: bool = True, high_inclusive: bool = False) -> float:
        """``value`` as a float if it lies in the range, else a ConfigError naming the rule,
        the field and the range (e.g. ``Adam: eps must be a number > 0, got -1``)."""
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            ok = value >= low if low_inclusive else value > low
        if ok and high is not None:
            ok = value <= high if high_inclusive else value < high
        if not ok:
            bound = f"{'>=' if low_inclusive else '>'} {low:g}"
            if high is not None:
                bound += f" and {'<=' if high_inclusive else '<'} {high:g}"
            raise ConfigError(f"{type(self).__name__}: {field} must be a number {bound}, "
                              f"got {value!r}", field=field)
        return float(value)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"
