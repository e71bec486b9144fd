"""`SaveBest`: keep the parameters that scored best on a monitored value (Flux's "New best
accuracy! Saving model")."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...serialize import load_params, save_params
from ..driver import Driver, Extension
from .tracking import BestTracker


class SaveBest(Extension):
    """Saves the graph's parameters whenever ``record`` improves.

    Args:
        record: the monitored value to track, e.g. ``'test_accuracy'``.
        mode: 'min' or 'max'.
        path: the ``.npz`` to write (atomically); default
            ``{output_directory}/{graph}-{name}-best.npz`` when the driver has an output
            directory. The best parameters are always kept in ``best_params`` too.
        min_delta: how much better a value must be to count.

    After training, ``graph.param_values = save_best.best_params`` (or ``np.load(path)``)
    restores the best model; ``best`` and ``best_iteration`` say when it was.
    """

    def __init__(self, record: str, mode: str = "min", path: str | os.PathLike | None = None,
                 min_delta: float = 0.0):
        self.tracker = BestTracker("SaveBest", record, mode, min_delta)
        self.path = Path(path) if path is not None else None
        self.best_params: dict[str, np.ndarray] | None = None

    @property
    def best(self) -> float | None:
        return self.tracker.best

    @property
    def best_iteration(self) -> int | None:
        return self.tracker.best_iteration

    def before_training(self, driver: Driver) -> None:
        if self.path is None and driver.output_directory is not None:
            self.path = driver.output_directory / f"{driver.graph.name}-{driver.name}-best.npz"

    def after_monitor(self, driver: Driver, values: Mapping[str, float]) -> None:
        record = self.tracker.record
        if record not in values or not self.tracker.update(values[record], driver.steps_done):
            return
        self.best_params = driver.graph.param_values
        where = ""
        if self.path is not None:
            save_params(self.best_params, self.path)
            where = f"; saved to {self.path}"
        driver.logger.info("New best %s=%.4f%s", record, values[record], where)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = self.tracker.state_dict()
        if self.best_params is not None and self.path is None:
            state["params"] = self.best_params  # nowhere else to find them after a resume
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        if "params" in state:
            self.best_params = dict(state["params"])
        elif self.path is not None and self.path.exists():
            self.best_params = load_params(self.path)
