"""`Driver`: the training loop: feed batches to a graph, record, report, checkpoint, recover.

The loop itself is short; everything else (monitoring, early stopping, schedules, progress
bars) belongs in extensions with a few hooks, so that one concept lives in one place.
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import TrainingError
from ..graph import Graph
from ..serialize import save, save_params
from .log import add_file_handler, get_logger
from .stats import Stats


class Extension:
    """Base class of driver extensions: override the hooks you need; all default to no-ops.

    Hooks get the driver, whose ``iteration``, ``epoch``, ``stats`` and ``graph`` they may
    read; an extension ends training by calling ``driver.stop(reason)``.
    """

    def before_training(self, driver: "Driver") -> None:
        """Called once before the first batch."""

    def after_batch(self, driver: "Driver", outputs: Mapping[str, Any]) -> None:
        """Called after every update step with that step's outputs."""

    def after_epoch(self, driver: "Driver") -> None:
        """Called when a finite source is exhausted (one pass over the data)."""

    def after_training(self, driver: "Driver") -> None:
        """Called once when training ends, however it ends."""


class _DeferInterrupt:
    """Turns Ctrl-C into a flag checked between steps, so a step is never cut in half."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "_DeferInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C: the user really wants out
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Driver:
    """Trains a graph that has a loss and updates.

    Args:
        graph: the graph to train.
        name: a name for this run (checkpoint files are ``{graph}-{name}-{iteration}.npz``).
        output_directory: where checkpoints and the definition go (created if needed);
            None keeps everything in memory.
        log_file: also write progress lines to this file.
        extensions: `Extension` objects called at their hooks, in order.
    """

    def __init__(self, graph: Graph, name: str | None = None,
                 output_directory: str | os.PathLike | None = None,
                 log_file: str | os.PathLike | None = None,
                 extensions: Sequence[Extension] = ()):
        if graph.loss is None or graph.trainer is None:
            raise TrainingError(f"Graph '{graph.name}' cannot be trained: it needs a loss and "
                                f"updates (learning-rate Inputs wired to parameters)")
        self.graph = graph
        self.name = name or "run"
        self.output_directory = Path(output_directory) if output_directory else None
        self.log_file = log_file
        self.extensions = list(extensions)
        self.logger = get_logger()
        self.stats = Stats()
        self.iteration = 0
        self.epoch = 0
        self.hyperparams: dict[str, Any] = {}
        self.stop_reason: str | None = None

    def stop(self, reason: str) -> None:
        """Ask the loop to end after the current step (extensions call this)."""
        self.stop_reason = reason

    def _checkpoint(self, iteration: int) -> Path | None:
        if self.output_directory is None:
            return None
        path = self.output_directory / f"{self.graph.name}-{self.name}-{iteration:07d}.npz"
        save_params(self.graph.param_values, path)
        return path

    def _run_epoch(self, source: Iterable[Mapping[str, Any]]) -> None:
        """One pass over ``source`` (a generator is a single, possibly endless, pass)."""
        steps = 0
        for batch in source:
            steps += 1
            self._step(batch)
            if self.stop_reason is not None:
                return
        if steps == 0:
            self.stop("the source yielded no batches")
            return
        self.epoch += 1
        for ext in self.extensions:
            ext.after_epoch(self)
        if iter(source) is source and self.stop_reason is None:
            self.stop("the source is exhausted")  # an iterator: it cannot be replayed

    def _step(self, batch: Mapping[str, Any]) -> None:
        outputs = self.graph(**{**batch, **self.hyperparams})
        loss = float(outputs[self.graph.loss])
        if not math.isfinite(loss):
            self._recover(loss)
            return
        self.stats.append({"key": self.name, "timestamp": time.time(),
                           "iteration": self.iteration, "epoch": self.epoch, "loss": loss})
        if self.print_freq and self.iteration % self.print_freq == 0:
            self.logger.info("%d / %d: %0.4f", self.iteration, self.max_iter, loss)
            if self._snapshot is not None:
                self._snapshot = self.graph.param_values
        if self.save_freq and self.iteration > 0 and self.iteration % self.save_freq == 0:
            self._checkpoint(self.iteration)
        for ext in self.extensions:
            ext.after_batch(self, outputs)
        if self._interrupt.requested:
            self.stop(f"interrupted after iteration {self.iteration}")
            self.logger.warning("Stopping early after %d iterations", self.iteration)
        if self.iteration >= self.max_iter and self.stop_reason is None:
            self.stop(f"reached max_iter={self.max_iter}")
        self.iteration += 1

    def _recover(self, loss: float) -> None:
        """Restore the last good parameters after a non-finite loss, or stop."""
        if self._snapshot is None or self._nan_left <= 0:
            self.stop(f"non-finite loss {loss} at iteration {self.iteration}")
            self.logger.error("Stopping: %s", self.stop_reason)
            return
        self._nan_left -= 1
        self.logger.warning("Non-finite loss %s at iteration %d: restored the last good "
                            "parameters (%d recoveries left)", loss, self.iteration,
                            self._nan_left)
        self.graph.param_values = self._snapshot

    def fit(self, source: Iterable[Mapping[str, Any]], hyperparams: Mapping[str, Any] | None =
            None, max_iter: int = 10000, save_freq: int | None = None, print_freq: int = 50,
            nan_exceptions: int = 0) -> Stats:
        """Train on batches from ``source`` until ``max_iter`` or the source or an extension
        stops it.

        Args:
            source: yields dicts keyed by input names (e.g. ``{'data': X, 'labels': y}``).
            hyperparams: constant inputs merged into every batch (``{'learning_rate': 0.02}``).
            max_iter: the last iteration; iterations are numbered from 0, as in the original
                library, so ``max_iter + 1`` steps at most.
            save_freq: write parameters to ``output_directory`` every this many iterations.
            print_freq: log ``[time] iteration / max_iter: loss`` every this many iterations.
            nan_exceptions: how many non-finite losses to recover from (by restoring the
                last good parameters) before stopping with an error logged.

        Returns:
            The statistics table: one row per step (key, timestamp, iteration, epoch, loss).
        """
        self.hyperparams = dict(hyperparams or {})
        self.max_iter, self.print_freq, self.save_freq = max_iter, print_freq, save_freq
        self.stop_reason = None
        self._nan_left = nan_exceptions
        self._snapshot = self.graph.param_values if nan_exceptions > 0 else None
        handler = add_file_handler(self.logger, str(self.log_file)) if self.log_file else None
        if self.output_directory is not None:
            self.output_directory.mkdir(parents=True, exist_ok=True)
            save(self.graph, self.output_directory / f"{self.graph.name}-{self.name}.json")
        for ext in self.extensions:
            ext.before_training(self)
        try:
            with _DeferInterrupt() as self._interrupt:
                while self.stop_reason is None:
                    self._run_epoch(source)
        except KeyboardInterrupt:
            self.stop(f"interrupted after iteration {self.iteration}")
            self.logger.warning("Stopping early after %d iterations", self.iteration)
        finally:
            for ext in self.extensions:
                ext.after_training(self)
            if self.output_directory is not None and save_freq:
                self._checkpoint(self.iteration)
            if handler is not None:
                self.logger.removeHandler(handler)
                handler.close()
        return self.stats


__all__ = ["Driver", "Extension"]
