"""Ending training: `FinishAfter` a number of epochs or steps (Blocks), `EarlyStopping` on a
target or when a monitored value stops improving (Flux's early exit, Keras' callback)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from ..driver import Driver
from ..extension import Extension
from .tracking import BestTracker


class FinishAfter(Extension):
    """Stops training after ``epochs`` complete epochs or ``iterations`` steps, whichever
    comes first (Blocks' ``FinishAfter(after_n_epochs=...)``); with it, ``Driver.fit``
    needs no ``max_iter``."""

    ends_training = True

    def __init__(self, epochs: int | None = None, iterations: int | None = None):
        for field, value in (("epochs", epochs), ("iterations", iterations)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise ConfigError(f"FinishAfter: {field} must be a positive int, got {value!r}",
                                  field=field)
        if epochs is None and iterations is None:
            raise ConfigError("FinishAfter: give epochs or iterations (or both)")
        self.epochs, self.iterations = epochs, iterations

    def after_batch(self, driver: Driver, outputs: Mapping[str, Any]) -> None:
        if self.iterations is not None and driver.steps_done >= self.iterations:
            driver.stop(f"finished after {self.iterations} iterations")

    def after_epoch(self, driver: Driver) -> None:
        if self.epochs is not None and driver.epoch >= self.epochs:
            driver.stop(f"finished after {self.epochs} epochs")


class EarlyStopping(Extension):
    """Stops training when a monitored value reaches ``target``, or has not improved for
    ``patience`` monitorings (epochs, with a `Monitor` that runs every epoch).

    Args:
        record: the monitored value, e.g. ``'test_accuracy'``.
        mode: 'min' or 'max'.
        patience: monitorings without improvement before stopping; None: never for that.
        target: stop as soon as the value is at least this good; None: no target.
        min_delta: how much better a value must be to count as an improvement.
        ties_improve: count a value equal to the best as an improvement (Flux's
            ``acc >= best_acc``); default False: it must be strictly better (Keras).
        reset_on_lr_drop: restart the patience count when a `ReduceLROnPlateau` of the same
            driver drops the learning rate, as Flux's loop does (``last_improvement = epoch``
            on a drop); the monitoring of the drop counts as the last improvement, whatever
            the order of the two extensions in the driver's list. Default False (Keras).

    Flux's model-zoo loop is ``ReduceLROnPlateau('test_accuracy', 'max', patience=5,
    ties_improve=True, min_value=1e-6, clamp_to_min=False)`` with
    ``EarlyStopping('test_accuracy', 'max', patience=10, target=0.999, ties_improve=True,
    reset_on_lr_drop=True)`` (tested against a transcription of that loop).
    """

    ends_training = True

    def __init__(self, record: str, mode: str = "min", patience: int | None = None,
                 target: float | None = None, min_delta: float = 0.0,
                 ties_improve: bool = False, reset_on_lr_drop: bool = False):
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int)
                                     or patience <= 0):
            raise ConfigError(f"EarlyStopping: patience must be a positive int or None, got "
                              f"{patience!r}", field="patience")
        if patience is None and target is None:
            raise ConfigError("EarlyStopping: give a patience, a target, or both")
        if not isinstance(reset_on_lr_drop, bool):
            raise ConfigError(f"EarlyStopping: reset_on_lr_drop must be True or False, got "
                              f"{reset_on_lr_drop!r}", field="reset_on_lr_drop")
        self.tracker = BestTracker("EarlyStopping", record, mode, min_delta, ties_improve)
        self.patience, self.target = patience, target
        self.reset_on_lr_drop = reset_on_lr_drop
        self.drops_seen = 0

    def after_monitor(self, driver: Driver, values: Mapping[str, float]) -> None:
        record = self.tracker.record
        if record not in values:
            return
        value = values[record]
        improved = self.tracker.update(value, driver.steps_done)
        if self.reset_on_lr_drop and driver.lr_drops != self.drops_seen:
            self.drops_seen = driver.lr_drops
            # A drop in this monitoring (the scheduler ran first) restarts the count here; a
            # drop in the previous one (the scheduler ran after us) restarted it there.
            same_round = driver.last_lr_drop == driver.steps_done
            self.tracker.wait = 0 if same_round or improved else 1
        if self.target is not None and self.tracker.reached(value, self.target):
            driver.stop(f"{record}={value:.4f} reached the target {self.target}")
        elif self.patience is not None and self.tracker.wait >= self.patience:
            driver.stop(f"{record} did not improve for {self.patience} monitorings "
                        f"(best {self.tracker.best:.4f})")

    def state_dict(self) -> dict[str, Any]:
        return {**self.tracker.state_dict(), "drops_seen": self.drops_seen}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        self.drops_seen = int(state.get("drops_seen", 0))
