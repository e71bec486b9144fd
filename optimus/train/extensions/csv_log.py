"""`CSVLog`: keep the statistics table on disk as CSV while training runs."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..driver import Driver
from ..extension import Extension
from .every import Every


class CSVLog(Extension):
    """Writes ``driver.stats`` to ``path`` (atomically, the whole table) after every epoch or
    every N steps, and when training ends.

    Args:
        path: the CSV file; columns are iteration, epoch, timestamp, loss and each
            monitored value.
        every_n_epochs, every_n_iterations: when (default: after every epoch).
    """

    def __init__(self, path: str | os.PathLike, every_n_epochs: int | None = None,
                 every_n_iterations: int | None = None):
        self.path = Path(path)
        self.every = Every("CSVLog", every_n_epochs, every_n_iterations)

    def _write(self, driver: Driver) -> None:
        if driver.stats.rows:
            driver.stats.to_csv(self.path)

    def after_batch(self, driver: Driver, outputs: Mapping[str, Any]) -> None:
        if self.every.after_batch(driver):
            self._write(driver)

    def after_epoch(self, driver: Driver) -> None:
        if self.every.after_epoch(driver):
            self._write(driver)

    def after_training(self, driver: Driver) -> None:
        self._write(driver)
