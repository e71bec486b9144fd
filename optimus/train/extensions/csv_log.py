"""`CSVLog`: keep the statistics table on disk as CSV while training runs."""
from __future__ import annotations

import os
from pathlib import Path

from ... import distributed
from ..driver import Driver
from .every import Periodic


class CSVLog(Periodic):
    """Writes ``driver.stats`` to ``path`` (atomically, the whole table) after every epoch or
    every N steps, and when training ends.

    Args:
        path: the CSV file; columns are iteration, epoch, timestamp, loss and each
            monitored value.
        every_n_epochs, every_n_iterations: when (default: after every epoch).
    """

    def __init__(self, path: str | os.PathLike, every_n_epochs: int | None = None,
                 every_n_iterations: int | None = None):
        super().__init__(every_n_epochs, every_n_iterations)
        self.path = Path(path)

    def fire(self, driver: Driver) -> None:
        """Write the whole table now (nothing before the first row; only rank 0 writes under
        several processes)."""
        if driver.stats.rows and distributed.is_main():
            driver.stats.to_csv(self.path)

    def after_training(self, driver: Driver) -> None:
        self.fire(driver)
