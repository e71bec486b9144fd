"""`SaveCheckpoint`: write the run's full checkpoint every N epochs or iterations."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..driver import Driver
from ..extension import Extension
from .every import Every


class SaveCheckpoint(Extension):
    """Writes a checkpoint (definition, parameters, optimizer and driver state) that
    ``Driver.fit(..., resume=path)`` continues from.

    Args:
        path: the file (default: the driver's ``checkpoint_path`` in its output directory).
        every_n_epochs, every_n_iterations: when (default: after every epoch).
    """

    def __init__(self, path: str | os.PathLike | None = None,
                 every_n_epochs: int | None = None, every_n_iterations: int | None = None):
        self.path = path
        self.every = Every("SaveCheckpoint", every_n_epochs, every_n_iterations)

    def after_batch(self, driver: Driver, outputs: Mapping[str, Any]) -> None:
        if self.every.after_batch(driver):
            driver.save_checkpoint(self.path)

    def after_epoch(self, driver: Driver) -> None:
        if self.every.after_epoch(driver):
            driver.save_checkpoint(self.path)
