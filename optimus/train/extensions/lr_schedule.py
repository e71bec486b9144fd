"""`ReduceLROnPlateau`: divide the learning rate when a monitored value stops improving
(Flux's "Haven't improved in a while, dropping learning rate")."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError, TrainingError
from ..driver import Driver
from ..extension import Extension
from .tracking import BestTracker


class ReduceLROnPlateau(Extension):
    """Multiplies learning-rate hyperparameters by ``factor`` after ``patience`` monitorings
    without improvement, then waits ``patience`` monitorings again.

    The learning rate is the value of a learning-rate Input, fed from
    ``driver.hyperparams``; that is what changes (and what a checkpoint keeps).

    Args:
        record: the monitored value, e.g. ``'test_accuracy'``.
        mode: 'min' or 'max'.
        patience: monitorings without improvement before a drop.
        factor: the multiplier, in (0, 1): 0.1 divides by ten.
        min_value: no drop once a rate is at or below this; with ``clamp_to_min`` (the
            default, Keras' ``min_lr``) rates never go below it.
        clamp_to_min: False: a rate above ``min_value`` is multiplied by ``factor`` even if
            the result falls below it (Flux's ``if eta > 1e-6; eta /= 10``: 3e-6 -> 3e-7).
        hyperparams: the names to change; default every learning-rate Input of the graph
            that ``hyperparams`` feeds.
        min_delta: how much better a value must be to count as an improvement.
        ties_improve: count a value equal to the best as an improvement (Flux's
            ``acc >= best_acc``); default False: it must be strictly better (Keras).

    A drop is counted in ``driver.lr_drops`` and ``driver.last_lr_drop`` (the step count
    then), which ``EarlyStopping(reset_on_lr_drop=True)`` follows.
    """

    def __init__(self, record: str, mode: str = "min", patience: int = 5, factor: float = 0.1,
                 min_value: float = 0.0, hyperparams: Sequence[str] | None = None,
                 min_delta: float = 0.0, ties_improve: bool = False,
                 clamp_to_min: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience <= 0:
            raise ConfigError(f"ReduceLROnPlateau: patience must be a positive int, got "
                              f"{patience!r}", field="patience")
        if not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ConfigError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}",
                              field="factor")
        self.tracker = BestTracker("ReduceLROnPlateau", record, mode, min_delta,
                                   ties_improve)
        self.patience, self.factor, self.min_value = patience, float(factor), float(min_value)
        self.hyperparams = None if hyperparams is None else list(hyperparams)
        self.clamp_to_min = bool(clamp_to_min)

    def before_training(self, driver: Driver) -> None:
        if self.hyperparams is None:
            self.hyperparams = [n for n in driver.graph.updates if n in driver.hyperparams]
        missing = [n for n in self.hyperparams if n not in driver.hyperparams]
        if missing or not self.hyperparams:
            raise TrainingError(f"ReduceLROnPlateau: hyperparams {missing or '(none)'} are not "
                                f"among the driver's hyperparams {list(driver.hyperparams)}; "
                                f"pass the learning rate to fit(hyperparams=...)")

    def after_monitor(self, driver: Driver, values: Mapping[str, float]) -> None:
        record = self.tracker.record
        if record not in values or self.tracker.update(values[record], driver.steps_done):
            return
        if self.tracker.wait < self.patience:
            return
        self.tracker.wait = 0  # give the new rate time to help
        dropped = False
        for name in self.hyperparams or ():
            old = float(driver.hyperparams[name])
            if old > self.min_value:
                new = old * self.factor
                driver.hyperparams[name] = max(new, self.min_value) if self.clamp_to_min else new
                dropped = True
                driver.report(f"{record} has not improved for {self.patience} monitorings: "
                              f"{name} {old:g} -> {driver.hyperparams[name]:g}",
                              logging.WARNING)
        if dropped:
            driver.lr_drops += 1
            driver.last_lr_drop = driver.steps_done

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state)
