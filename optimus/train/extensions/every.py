"""`Every`: when a periodic extension fires: every N epochs and/or every N iterations;
`Periodic`: the base of extensions that do one thing on such a schedule."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ..extension import Extension

if TYPE_CHECKING:
    from ..driver import Driver


class Every:
    """A trigger shared by periodic extensions (monitoring, checkpoints, CSV logs).

    Args:
        owner: the extension's name, for error messages.
        every_n_epochs: fire after every this many completed epochs.
        every_n_iterations: fire after every this many steps (counting steps taken, so 100
            fires after steps 99, 199, ...).
        default_epochs: what ``every_n_epochs`` becomes when neither is given (None: an
            error, one of them is required).
    """

    def __init__(self, owner: str, every_n_epochs: int | None = None,
                 every_n_iterations: int | None = None, default_epochs: int | None = 1):
        for field, value in (("every_n_epochs", every_n_epochs),
                             ("every_n_iterations", every_n_iterations)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise ConfigError(f"{owner}: {field} must be a positive int or None, got "
                                  f"{value!r}", field=field)
        if every_n_epochs is None and every_n_iterations is None:
            if default_epochs is None:
                raise ConfigError(f"{owner}: give every_n_epochs or every_n_iterations")
            every_n_epochs = default_epochs
        self.epochs, self.iterations = every_n_epochs, every_n_iterations

    def after_batch(self, driver: "Driver") -> bool:
        """Whether to fire after the step ``driver.iteration`` (numbered from 0)."""
        return self.iterations is not None and (driver.iteration + 1) % self.iterations == 0

    def after_epoch(self, driver: "Driver") -> bool:
        """Whether to fire now that ``driver.epoch`` epochs are complete."""
        return self.epochs is not None and driver.epoch % self.epochs == 0


class Periodic(Extension):
    """Base of extensions that do one thing (`fire`) every N epochs and/or iterations.

    Args:
        every_n_epochs, every_n_iterations: when, as `Every` counts (default: after every
            epoch).
    """

    def __init__(self, every_n_epochs: int | None = None,
                 every_n_iterations: int | None = None):
        self.every = Every(type(self).__name__, every_n_epochs, every_n_iterations)

    def fire(self, driver: "Driver") -> None:
        """What to do when due."""
        raise NotImplementedError(f"{type(self).__name__} must define fire()")

    def after_batch(self, driver: "Driver", outputs: Mapping[str, Any]) -> None:
        if self.every.after_batch(driver):
            self.fire(driver)

    def after_epoch(self, driver: "Driver") -> None:
        if self.every.after_epoch(driver):
            self.fire(driver)
