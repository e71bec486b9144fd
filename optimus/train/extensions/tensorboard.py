"""`TensorBoard`: watch a run in TensorBoard (``tensorboard --logdir DIR``) while it trains."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ... import distributed
from ...extras import require
from ..driver import Driver
from ..extension import Extension


class TensorBoard(Extension):
    """Writes TensorBoard event files through `torch.utils.tensorboard.SummaryWriter`.

    Tags, each at the driver's iteration as its step:

    - ``loss``: every step's training loss (non-finite steps are skipped, as in the stats);
    - ``learning_rate/<input>``: every step's value of each learning-rate Input;
    - ``<name>``: every monitored value (a `Monitor`'s ``test_cost``, ...), when recorded;
    - ``epoch/loss``: the mean training loss of each epoch, and ``epoch/epoch`` its number;
    - ``params/<node.param>`` histograms after each epoch, with ``histograms=True``.

    Under several processes (torchrun) only rank 0 writes. Needs the ``tensorboard`` extra.

    Args:
        log_dir: the folder of the event files (created if missing).
        histograms: also write a histogram of every parameter after each epoch.
        flush_secs: how often the writer flushes to disk.
    """

    def __init__(self, log_dir: str | os.PathLike, histograms: bool = False,
                 flush_secs: int = 10):
        require("tensorboard", "tensorboard", "the TensorBoard extension")
        self.log_dir = Path(log_dir)
        self.histograms = histograms
        self.flush_secs = flush_secs
        self._writer: Any = None
        self._epoch_losses: list[float] = []

    def before_training(self, driver: Driver) -> None:
        if distributed.is_main() and self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir), flush_secs=self.flush_secs)

    def after_batch(self, driver: Driver, outputs: Mapping[str, Any]) -> None:
        if self._writer is None:
            return
        step = driver.iteration
        loss = float(outputs[driver.graph.loss])
        if math.isfinite(loss):
            self._writer.add_scalar("loss", loss, step)
            self._epoch_losses.append(loss)
        for name in driver.graph.updates:
            if name in driver.hyperparams:
                self._writer.add_scalar(f"learning_rate/{name}",
                                        float(driver.hyperparams[name]), step)

    def after_monitor(self, driver: Driver, values: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            self._writer.add_scalar(name, float(value), driver.iteration)

    def after_epoch(self, driver: Driver) -> None:
        if self._writer is None:
            return
        step = max(driver.iteration - 1, 0)  # the epoch's last step
        if self._epoch_losses:
            self._writer.add_scalar("epoch/loss", sum(self._epoch_losses)
                                    / len(self._epoch_losses), step)
        self._writer.add_scalar("epoch/epoch", driver.epoch, step)
        self._epoch_losses = []
        if self.histograms:
            for name, value in driver.graph.param_values.items():
                self._writer.add_histogram(f"params/{name}", value, step)
        self._writer.flush()

    def after_training(self, driver: Driver) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["TensorBoard"]
