"""`BestTracker`: whether a monitored value improved, for save-best, early stopping and
learning-rate drops."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError


class BestTracker:
    """Tracks the best value of one monitored record and how long ago it improved.

    Args:
        owner: the extension's name, for error messages.
        record: the monitored name, e.g. ``'test_error'`` (a `Monitor`'s prefix + output).
        mode: 'min' (lower is better: costs, errors) or 'max' (accuracy).
        min_delta: how much better a value must be to count as an improvement.
        ties_improve: whether a value equal to the best (within ``min_delta``) counts as an
            improvement (Flux's ``acc >= best_acc``); by default it must be strictly better
            (Keras).
    """

    def __init__(self, owner: str, record: str, mode: str = "min", min_delta: float = 0.0,
                 ties_improve: bool = False):
        if not isinstance(record, str) or not record:
            raise ConfigError(f"{owner}: record must be a monitored value's name such as "
                              f"'test_cost', got {record!r}", field="record")
        if mode not in ("min", "max"):
            raise ConfigError(f"{owner}: mode must be 'min' or 'max', got {mode!r}",
                              field="mode")
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ConfigError(f"{owner}: min_delta must be a number >= 0, got {min_delta!r}",
                              field="min_delta")
        if not isinstance(ties_improve, bool):
            raise ConfigError(f"{owner}: ties_improve must be True or False, got "
                              f"{ties_improve!r}", field="ties_improve")
        self.record, self.mode, self.min_delta = record, mode, float(min_delta)
        self.ties_improve = ties_improve
        self.best: float | None = None
        self.best_iteration: int | None = None
        self.wait = 0  # monitorings since the last improvement

    def is_better(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta`` (or by exactly
        ``min_delta``, with ``ties_improve``)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            bound = self.best - self.min_delta
            return value <= bound if self.ties_improve else value < bound
        bound = self.best + self.min_delta
        return value >= bound if self.ties_improve else value > bound

    def reached(self, value: float, target: float) -> bool:
        """Whether ``value`` is at least as good as ``target``."""
        return value <= target if self.mode == "min" else value >= target

    def update(self, value: float, iteration: int) -> bool:
        """Take a new value; returns whether it is an improvement (and then the new best)."""
        if self.is_better(value):
            self.best, self.best_iteration, self.wait = float(value), int(iteration), 0
            return True
        self.wait += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_iteration": self.best_iteration, "wait": self.wait}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = state.get("best")
        self.best_iteration = state.get("best_iteration")
        self.wait = int(state.get("wait", 0))
