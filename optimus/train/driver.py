"""`Driver`: the training loop: feed batches to a graph, record, report, checkpoint, recover.

The loop itself is short; everything else (monitoring, early stopping, schedules, progress
bars) belongs in extensions with a few hooks, so that one concept lives in one place.

Counting: ``driver.iteration`` is the number of the step being taken (from 0, as the original
library printed ``0 / 500``) while it runs and in ``after_batch``; between steps it is the
number of steps taken. ``driver.epoch`` is the number of completed passes over a finite
source, ``driver.position`` the number of batches drawn in the current pass.
"""
from __future__ import annotations

import copy
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.streams import open_epoch
from ..errors import TrainingError
from ..graph import Graph
from ..serialize import save, save_params
from .checkpoint import load_checkpoint, restore_graph, save_checkpoint
from .log import add_file_handler, get_logger
from .rng import get_rng_state, set_rng_state
from .stats import Stats


class Extension:
    """Base class of driver extensions: override the hooks you need; all default to no-ops.

    Hooks get the driver, whose ``iteration``, ``epoch``, ``hyperparams``, ``stats`` and
    ``graph`` they may read (and ``hyperparams`` change); an extension ends training by calling
    ``driver.stop(reason)``. An extension with state worth resuming (a best value, a counter)
    returns it from `state_dict` and takes it back in `load_state_dict`.
    """

    def before_training(self, driver: "Driver") -> None:
        """Called once at the start of `Driver.fit`, before the first batch."""

    def after_batch(self, driver: "Driver", outputs: Mapping[str, Any]) -> None:
        """Called after every update step with that step's outputs."""

    def after_epoch(self, driver: "Driver") -> None:
        """Called when a finite source is exhausted (one pass over the data)."""

    def after_monitor(self, driver: "Driver", values: Mapping[str, float]) -> None:
        """Called whenever monitored values are recorded (``{'test_cost': 0.66, ...}``), e.g.
        by a `Monitor`; extensions that act on a monitored value (save the best, stop early,
        drop the learning rate) react here."""

    def after_training(self, driver: "Driver") -> None:
        """Called once when training ends, however it ends."""

    def state_dict(self) -> dict[str, Any]:
        """State to put in a checkpoint (JSON data and arrays); empty if none."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back what `state_dict` returned, when a run resumes."""


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


def _is_main_process() -> bool:
    """Whether this process writes files and logs (rank 0 under torch.distributed)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class Driver:
    """Trains a graph that has a loss and updates.

    Args:
        graph: the graph to train.
        name: a name for this run (files are ``{graph}-{name}...`` in ``output_directory``).
        output_directory: where the definition, parameter files (every ``save_freq``) and the
            run's checkpoint go (created if needed); None keeps everything in memory.
        log_file: also write progress lines to this file.
        extensions: `Extension` objects called at their hooks, in order.
    """

    def __init__(self, graph: Graph, name: str | None = None,
                 output_directory: str | os.PathLike | None = None,
                 log_file: str | os.PathLike | None = None,
                 extensions: Sequence[Extension] = ()):
        if graph.loss is None or graph.optimizer is None:
            raise TrainingError(f"Graph '{graph.name}' cannot be trained: it needs a loss and "
                                f"updates (learning-rate Inputs wired to parameters)")
        for i, ext in enumerate(extensions):
            if not isinstance(ext, Extension):
                raise TrainingError(f"Driver: extensions[{i}] is {ext!r}, not an Extension")
        self.graph = graph
        self.name = name or "run"
        self.output_directory = Path(output_directory) if output_directory else None
        self.log_file = log_file
        self.extensions = list(extensions)
        self.logger = get_logger()
        self.stats = Stats()
        self.iteration = 0
        self.epoch = 0
        self.position = 0
        self.hyperparams: dict[str, Any] = {}
        self.monitored: dict[str, float] = {}
        self.stop_reason: str | None = None
        self.max_iter: int | None = None
        self._in_step = False
        self._pass_rng: dict[str, Any] | None = None
        self._resume_rng: dict[str, Any] | None = None
        self._last_source: Any = None
        self._continue_iterator = False
        self._saved_extensions: list[dict[str, Any]] = []

    @property
    def steps_done(self) -> int:
        """Update steps completed, counting the one whose ``after_batch`` hooks are running."""
        return self.iteration + (1 if self._in_step else 0)

    # -- control ----------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Ask the loop to end after the current step (extensions call this); the first
        reason given is kept."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def record(self, values: Mapping[str, float]) -> None:
        """Record monitored values: added to the last row of ``stats``, kept in
        ``monitored``, and passed to every extension's `Extension.after_monitor`."""
        values = {k: float(v) for k, v in values.items()}
        if self.stats.rows:
            self.stats.update_last(values)
        else:
            self.stats.append({"key": self.name, "timestamp": time.time(),
                               "iteration": self.iteration - 1, "epoch": self.epoch, **values})
        self.monitored.update(values)
        for ext in self.extensions:
            ext.after_monitor(self, values)

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """Where this run's checkpoint goes (``{graph}-{name}.checkpoint.npz`` in the output
        directory), or None without an output directory."""
        if self.output_directory is None:
            return None
        return self.output_directory / f"{self.graph.name}-{self.name}.checkpoint.npz"

    def state_dict(self) -> dict[str, Any]:
        """The driver's state: counters, hyperparameters, random states, statistics and the
        extensions' states (what a checkpoint holds besides the graph)."""
        saved, seen = [], {}
        for ext in self.extensions:  # the k-th extension of each type, so lists may grow
            kind = type(ext).__name__
            index = seen[kind] = seen.get(kind, -1) + 1
            state = ext.state_dict()
            if state:
                saved.append({"type": kind, "index": index, "state": state})
        return {
            "name": self.name,
            "iteration": self.steps_done,  # the next step to take
            "epoch": self.epoch,
            "position": self.position,
            "hyperparams": dict(self.hyperparams),
            "monitored": dict(self.monitored),
            "rng": get_rng_state(),
            "pass_rng": self._pass_rng,
            "extensions": saved,
            "stats": self.stats.to_arrays(),
            "stats_columns": list(self.stats.columns),
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write a checkpoint (graph, optimizer and driver state) to ``path`` (default:
        `checkpoint_path`), atomically; returns its path (None if there is nowhere to write
        or this is not the main process)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None or not _is_main_process():
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(path, self.graph, self.state_dict())

    def _resume(self, path: str | os.PathLike, hyperparams: dict[str, Any]) -> None:
        checkpoint = load_checkpoint(path)
        restore_graph(self.graph, checkpoint)
        state = checkpoint.state
        self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
        self.position = int(state["position"])
        self.stop_reason = None
        self.hyperparams = {**hyperparams, **state.get("hyperparams", {})}
        self.monitored = dict(state.get("monitored", {}))
        self.stats = Stats.from_arrays(state.get("stats", {}), state.get("stats_columns"))
        self._pass_rng = state.get("pass_rng")
        self._resume_rng = state["rng"]
        self._saved_extensions = state.get("extensions", [])
        self.logger.info("Resuming from %s at iteration %d (epoch %d)", path, self.iteration,
                         self.epoch)

    def _load_extension_states(self) -> None:
        for entry in self._saved_extensions:
            same = [e for e in self.extensions if type(e).__name__ == entry["type"]]
            if entry["index"] < len(same):
                same[entry["index"]].load_state_dict(entry["state"])
            else:
                warnings.warn(f"Driver: the checkpoint holds the state of a {entry['type']} "
                              f"extension that this driver does not have; it is ignored",
                              stacklevel=3)
        self._saved_extensions = []

    # -- the loop -----------------------------------------------------------------------------
    def _take_snapshot(self) -> None:
        """Keep the parameters and optimizer state for `_recover`, if they are finite (a
        finite loss may still have come with an infinite gradient)."""
        if self._nan_left > 0 and all(bool(torch.isfinite(p.tensor).all())
                                      for p in self.graph.params.values()):
            self._snapshot = (self.graph.param_values,
                              copy.deepcopy(self.graph.optimizer.state_dict()))

    def _open_pass(self, source: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        """An iterator over the current pass, rejoining a resumed pass where it stopped."""
        if self._continue_iterator:  # the same one-pass iterator: it knows where it is
            self._continue_iterator = False
            return iter(source)
        if self._resume_rng is not None:
            rng, self._resume_rng = self._resume_rng, None
            if self.position > 0 and self._pass_rng is not None:
                # Replay the pass's start with the random state it had, then skip what the
                # interrupted run consumed, then continue from the checkpoint's random state.
                set_rng_state(self._pass_rng)
                iterator = open_epoch(source, self.epoch, self.position)
                set_rng_state(rng)
                return iterator
            set_rng_state(rng)
        self.position = 0
        self._pass_rng = get_rng_state()
        return open_epoch(source, self.epoch, 0)

    def _run_pass(self, source: Iterable[Mapping[str, Any]]) -> None:
        """One pass over ``source`` (a generator is a single, possibly endless, pass)."""
        for batch in self._open_pass(source):
            self.position += 1
            self._step(batch)
            if self.stop_reason is not None:
                return
        if self.position == 0:
            self.stop("the source yielded no batches")
            return
        self.epoch += 1
        self.position = 0
        self._pass_rng = None
        for ext in self.extensions:
            ext.after_epoch(self)
        if isinstance(source, Iterator):
            self.stop("the source is exhausted")  # an iterator: it cannot be replayed

    def _step(self, batch: Mapping[str, Any]) -> None:
        outputs = self.graph(**{**batch, **self.hyperparams})
        loss = float(outputs[self.graph.loss])
        if not math.isfinite(loss):
            self._recover(loss)
            return
        self._in_step = True
        self.stats.append({"key": self.name, "timestamp": time.time(),
                           "iteration": self.iteration, "epoch": self.epoch, "loss": loss})
        if self.print_freq and self.iteration % self.print_freq == 0:
            self.logger.info("%d / %s: %0.4f", self.iteration,
                             "-" if self.max_iter is None else self.max_iter, loss)
            self._take_snapshot()
        for ext in self.extensions:
            ext.after_batch(self, outputs)
        if self._interrupt.requested:
            self.stop(f"interrupted after iteration {self.iteration}")
            self.logger.warning("Stopping early after %d iterations", self.iteration)
        if self.max_iter is not None and self.iteration >= self.max_iter:
            self.stop(f"reached max_iter={self.max_iter}")
        self._in_step = False
        self.iteration += 1
        if self.save_freq and (self.iteration - 1) > 0 and \
                (self.iteration - 1) % self.save_freq == 0:
            self._save_periodic(self.iteration - 1)

    def _save_periodic(self, iteration: int) -> None:
        if self.output_directory is None or not _is_main_process():
            return
        path = self.output_directory / f"{self.graph.name}-{self.name}-{iteration:07d}.npz"
        save_params(self.graph.param_values, path)
        self.save_checkpoint()
        self._take_snapshot()

    def _recover(self, loss: float) -> None:
        """Restore the last good parameters and optimizer state after a non-finite loss, or
        stop."""
        if self._snapshot is None or self._nan_left <= 0:
            self.stop(f"non-finite loss {loss} at iteration {self.iteration}")
            self.logger.error("Stopping: %s", self.stop_reason)
            return
        self._nan_left -= 1
        self.logger.warning("Non-finite loss %s at iteration %d: restored the last good "
                            "parameters (%d recoveries left)", loss, self.iteration,
                            self._nan_left)
        params, optimizer_state = self._snapshot
        self.graph.param_values = params
        self.graph.optimizer.load_state_dict(copy.deepcopy(optimizer_state))

    def fit(self, source: Iterable[Mapping[str, Any]],
            hyperparams: Mapping[str, Any] | None = None, max_iter: int | None = 10000,
            save_freq: int | None = None, print_freq: int = 50, nan_exceptions: int = 0,
            resume: str | os.PathLike | None = None) -> Stats:
        """Train on batches from ``source`` until ``max_iter``, the end of a one-pass source,
        or an extension stops it.

        Args:
            source: yields dicts keyed by input names (e.g. ``{'data': X, 'labels': y}``): a
                `Stream` or list (re-iterated for epochs), a DataLoader via `LoaderStream`, or
                a generator such as `minibatch` (one pass).
            hyperparams: constant inputs merged into every batch (``{'learning_rate': 0.02}``);
                extensions may change them (``driver.hyperparams``).
            max_iter: the last iteration; iterations are numbered from 0, as in the original
                library, so ``max_iter + 1`` steps at most. None: no limit (stop by epochs or
                extensions).
            save_freq: every this many iterations write the parameters
                (``{graph}-{name}-{iteration}.npz``) and the checkpoint to
                ``output_directory``.
            print_freq: log ``[time] iteration / max_iter: loss`` every this many iterations.
            nan_exceptions: how many non-finite losses to recover from (restoring the last
                good parameters and optimizer state, kept every ``print_freq`` iterations)
                before stopping with an error logged.
            resume: a checkpoint (e.g. ``driver.checkpoint_path`` of an earlier run) to
                continue from: parameters, optimizer state, counters, hyperparameters, random
                states and extension states are restored (the checkpoint's hyperparams, e.g. a
                dropped learning rate, win over ``hyperparams``), so the run reaches the
                numbers an uninterrupted one would (same source, same extensions). Without it,
                a second ``fit`` on the same source continues the pass the last one stopped in.

        Returns:
            The statistics table: one row per step (key, timestamp, iteration, epoch, loss)
            plus monitored values.
        """
        if max_iter is not None and (not isinstance(max_iter, int) or max_iter < 0):
            raise TrainingError(f"Driver.fit: max_iter must be an int >= 0 or None, got "
                                f"{max_iter!r}")
        self.hyperparams = dict(hyperparams or {})
        if resume is not None:
            self._resume(resume, self.hyperparams)
        elif self.position > 0 and source is self._last_source:
            # fit again on the same source after stopping mid-pass: carry on with that pass,
            # exactly as a resumed (or an uninterrupted) run would
            if isinstance(source, Iterator):
                self._continue_iterator = True
            else:
                self._resume_rng = get_rng_state()
        self._last_source = source
        self.max_iter, self.print_freq, self.save_freq = max_iter, print_freq, save_freq
        self.stop_reason = None
        self._nan_left = nan_exceptions
        self._snapshot = None
        self._take_snapshot()
        main = _is_main_process()
        handler = add_file_handler(self.logger, str(self.log_file)) if (
            self.log_file and main) else None
        if self.output_directory is not None and main:
            self.output_directory.mkdir(parents=True, exist_ok=True)
            save(self.graph, self.output_directory / f"{self.graph.name}-{self.name}.json")
        self._interrupt = _DeferInterrupt()
        try:
            with self._interrupt:
                for ext in self.extensions:
                    ext.before_training(self)
                self._load_extension_states()
                while self.stop_reason is None:
                    if self.max_iter is not None and self.iteration > self.max_iter:
                        self.stop(f"reached max_iter={self.max_iter}")
                        break
                    self._run_pass(source)
        except KeyboardInterrupt:
            self._in_step = False
            self.stop(f"interrupted after iteration {self.iteration}")
            self.logger.warning("Stopping early after %d iterations", self.iteration)
        finally:
            self._in_step = False
            for ext in self.extensions:
                ext.after_training(self)
            self.save_checkpoint()
            if handler is not None:
                self.logger.removeHandler(handler)
                handler.close()
        return self.stats


__all__ = ["Driver", "Extension"]
