"""`SaveCheckpoint`: write the run's full checkpoint every N epochs or iterations."""
from __future__ import annotations

import os

from ..driver import Driver
from .every import Periodic


class SaveCheckpoint(Periodic):
    """Writes a checkpoint (definition, parameters, optimizer and driver state) that
    ``Driver.fit(..., resume=path)`` continues from.

    Args:
        path: the file (default: the driver's ``checkpoint_path`` in its output directory).
        every_n_epochs, every_n_iterations: when (default: after every epoch).
    """

    def __init__(self, path: str | os.PathLike | None = None,
                 every_n_epochs: int | None = None, every_n_iterations: int | None = None):
        super().__init__(every_n_epochs, every_n_iterations)
        self.path = path

    def fire(self, driver: Driver) -> None:
        """Write the checkpoint now."""
        driver.save_checkpoint(self.path)
