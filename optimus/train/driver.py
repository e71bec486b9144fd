"""`Driver`: the training loop: feed batches to a graph, record, report, checkpoint, recover.

The loop itself is short; the rest lives in its own place: extensions (monitoring, early
stopping, schedules) in `optimus.train.extensions`, the console output in
`optimus.train.report`, exact resumption in `optimus.train.resume`, rollback after a
non-finite loss in `optimus.train.nan_recovery`.

Counting: ``driver.iteration`` is the number of the step being taken (from 0, as the original
library printed ``0 / 500``) while it runs and in ``after_batch``; between steps (and after
``fit``) it is the number of steps taken. ``driver.epoch`` is the number of completed passes
over a finite source, ``driver.position`` the number of batches drawn in the current pass.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import distributed
from ..errors import TrainingError
from ..graph import Graph
from ..serialize import save, save_params
from .checkpoint import save_checkpoint
from .extension import Extension
from .interrupt import _DeferInterrupt
from .log import get_logger
from .nan_recovery import NaNRecovery
from .precision import step_context
from .report import ConsoleReporter
from .resume import PassReplay, driver_state, load_extension_states, resume_driver
from .scale_out import ScaleOut
from .stats import Stats


class Driver:
    """Trains a graph that has a loss and updates.

    Args:
        graph: the graph to train.
        name: a name for this run (files are ``{graph}-{name}...`` in ``output_directory``).
        output_directory: where the definition, parameter files (every ``save_freq``) and the
            run's checkpoint go (created if needed); None keeps everything in memory.
        log_file: also append every progress line and message to this file (whatever
            ``verbose`` says).
        extensions: `Extension` objects called at their hooks, in order.
        verbose: what ``fit`` prints to standard output: 0 nothing; 1 (default) a tqdm
            progress bar when tqdm is installed and standard output is a terminal, otherwise
            progress lines; 2 progress lines always. A progress line,
            ``[time] iteration / max_iter: loss``, is printed at every iteration that is a
            non-zero multiple of ``print_freq``; messages (monitored values, new best, a
            learning-rate drop, a rollback) and a final line saying what ended the run are
            printed at 1 and 2. Every line also goes to the ``optimus`` logger (progress
            lines to ``optimus.train`` at INFO), which prints nothing unless the application
            configures logging.

    Attributes:
        iteration: the step being taken (from 0) during hooks; the number of steps taken
            between steps and after ``fit``.
        epoch: completed passes over a finite source.
        position: batches drawn in the current pass.
        stop_reason: what ended the last ``fit`` (e.g. ``'finished after 20 epochs'``,
            ``'reached max_iter=500'``, ``'the source is exhausted'``, ``'interrupted after
            iteration 41'``), None while running.
        stats: the `Stats` table ``fit`` returns.
        hyperparams: the constant inputs fed with every batch (extensions may change them).
        monitored: the latest value of everything monitored so far.
        lr_drops, last_lr_drop: how many times a `ReduceLROnPlateau` dropped the learning
            rate, and `steps_done` at the last drop (None before any).
    """

    def __init__(self, graph: Graph, name: str | None = None,
                 output_directory: str | os.PathLike | None = None,
                 log_file: str | os.PathLike | None = None,
                 extensions: Sequence[Extension] = (), verbose: int = 1):
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
        self.reporter = ConsoleReporter(verbose, None)
        self.logger = get_logger()
        self._progress_logger = get_logger("train")
        self.stats = Stats()
        self.iteration = 0
        self.epoch = 0
        self.position = 0
        self.hyperparams: dict[str, Any] = {}
        self.monitored: dict[str, float] = {}
        self.stop_reason: str | None = None
        self.lr_drops = 0
        self.last_lr_drop: int | None = None
        self.max_iter: int | None = None
        self.print_freq = 0
        self.save_freq: int | None = None
        self.replay = PassReplay()
        self.nan_recovery = NaNRecovery(graph)
        self._in_step = False
        self._interrupt = _DeferInterrupt()
        self._scale_out: ScaleOut | None = None
        self._precision = contextlib.nullcontext

    @property
    def verbose(self) -> int:
        """The console verbosity (0, 1 or 2; see the class docstring)."""
        return self.reporter.verbose

    @property
    def steps_done(self) -> int:
        """Update steps completed, counting the one whose ``after_batch`` hooks are running."""
        return self.iteration + (1 if self._in_step else 0)

    # -- control ----------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Ask the loop to end after the current step (extensions call this); the first
        reason given is kept as `stop_reason`."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def report(self, message: str, level: int = logging.INFO) -> None:
        """Tell the user something: a line on the console (``verbose`` 1 or 2), in the log
        file, and a record on the ``optimus`` logger at ``level``. Extensions use this."""
        self.logger.log(level, message)
        self.reporter.line(message)

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
        return driver_state(self)

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write a checkpoint (graph, optimizer and driver state) to ``path`` (default:
        `checkpoint_path`), atomically; returns its path (None if there is nowhere to write
        or this is not the main process)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None or not distributed.is_main():
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(path, self.graph, self.state_dict())

    # -- the loop -----------------------------------------------------------------------------
    def _run_pass(self, source: Iterable[Mapping[str, Any]]) -> None:
        """One pass over ``source`` (a generator is a single, possibly endless, pass)."""
        iterator, self.position = self.replay.open_pass(source, self.epoch, self.position)
        for batch in iterator:
            self.position += 1
            self._step(batch)
            if self.stop_reason is not None:
                return
        if self.position == 0:
            self.stop("the source yielded no batches")
            return
        self.epoch += 1
        self.position = 0
        self.replay.end_pass()
        for ext in self.extensions:
            ext.after_epoch(self)
        if isinstance(source, Iterator):
            self.stop("the source is exhausted")  # an iterator: it cannot be replayed

    def _progress_line(self, loss: float) -> None:
        if self.max_iter is not None:
            message = f"{self.iteration} / {self.max_iter}: {loss:0.4f}"
        else:
            message = f"{self.iteration} (epoch {self.epoch}): {loss:0.4f}"
        self._progress_logger.info(message)
        self.reporter.line(message, progress=True)

    def _step(self, batch: Mapping[str, Any]) -> None:
        self.nan_recovery.before_step(self.iteration)
        scale_out = self._scale_out
        batch = scale_out.local(batch, self._interrupt.requested)  # this rank's rows
        with scale_out.failures(f"iteration {self.iteration}"), self._precision(), \
                scale_out.drawing():
            outputs = self.graph(**{**batch, **self.hyperparams})
        loss, interrupted = scale_out.global_values(float(outputs[self.graph.loss]),
                                                    self._interrupt.requested, self.iteration)
        if scale_out.active:
            outputs[self.graph.loss] = loss  # extensions see the global batch's loss
        if not math.isfinite(loss):
            self._recover(loss)
            return
        self._in_step = True
        self.stats.append({"key": self.name, "timestamp": time.time(),
                           "iteration": self.iteration, "epoch": self.epoch, "loss": loss})
        self.reporter.progress(loss, self.monitored)
        if self.print_freq and self.iteration > 0 and self.iteration % self.print_freq == 0:
            self._progress_line(loss)
        for ext in self.extensions:
            ext.after_batch(self, outputs)
        if interrupted or (self._interrupt.requested and not scale_out.active):
            self.stop(f"interrupted after iteration {self.iteration}")
        if self.max_iter is not None and self.iteration >= self.max_iter:
            self.stop(f"reached max_iter={self.max_iter}")
        self._in_step = False
        self.iteration += 1
        if self.save_freq and (self.iteration - 1) > 0 and \
                (self.iteration - 1) % self.save_freq == 0:
            self._save_periodic(self.iteration - 1)

    def _save_periodic(self, iteration: int) -> None:
        if self.output_directory is None or not distributed.is_main():
            return
        path = self.output_directory / f"{self.graph.name}-{self.name}-{iteration:07d}.npz"
        save_params(self.graph.param_values, path)
        self.save_checkpoint()

    def _recover(self, loss: float) -> None:
        """Roll back to the last snapshot after a non-finite loss, or stop."""
        if not self.nan_recovery.recover():
            self.stop(f"non-finite loss {loss} at iteration {self.iteration}")
            return
        self.report(f"Non-finite loss {loss} at iteration {self.iteration}: restored the "
                    f"parameters and optimizer state from before iteration "
                    f"{self.nan_recovery.snapshot_iteration} ({self.nan_recovery.left} "
                    f"recoveries left)", logging.WARNING)

    def _check_ending(self, source: Iterable[Mapping[str, Any]], max_iter: int | None) -> None:
        if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, int)
                                     or max_iter < 0):
            raise TrainingError(f"Driver.fit: max_iter must be an int >= 0 or None, got "
                                f"{max_iter!r}")
        if max_iter is None and not isinstance(source, Iterator) and not any(
                ext.ends_training for ext in self.extensions):
            raise TrainingError(
                f"Driver.fit: {type(source).__name__} source is re-iterated epoch after "
                f"epoch and nothing would end the run; give max_iter, or an extension that "
                f"ends it such as FinishAfter(epochs=...) or EarlyStopping(...) (a custom "
                f"extension that calls driver.stop declares ends_training = True)")

    def fit(self, source: Iterable[Mapping[str, Any]],
            hyperparams: Mapping[str, Any] | None = None, max_iter: int | None = None,
            save_freq: int | None = None, print_freq: int = 50, nan_exceptions: int = 0,
            nan_snapshot_every: int = 10, resume: str | os.PathLike | None = None,
            precision: str | None = None) -> Stats:
        """Train on batches from ``source`` until something ends the run: ``max_iter``, an
        extension (`FinishAfter`, `EarlyStopping`), the end of a one-pass source, a
        non-finite loss, or Ctrl-C. `stop_reason` then says which, and a final line reports
        it.

        Args:
            source: yields dicts keyed by input names (e.g. ``{'data': X, 'labels': y}``): a
                `Stream` or list (re-iterated for epochs), a DataLoader via `LoaderStream`, or
                a generator such as `minibatch` (one pass).
            hyperparams: constant inputs merged into every batch (``{'learning_rate': 0.02}``);
                extensions may change them (``driver.hyperparams``). Learning rates are
                inputs: each learning-rate Input wired to parameters in the graph's
                ``updates`` sets the ``lr`` of its own group of the step rule's torch
                optimizer before every step (so changing ``driver.hyperparams`` changes the
                next step, and parameters wired to no Input never move); the step rule
                (``SGD(momentum=0.9)``, ``Adam()``, ...) holds every other setting. Each step
                is a training call: noise and dropout nodes are active, BatchNorm uses and
                updates batch statistics; a call with all learning rates 0 (as `Monitor`
                makes) is not.
            max_iter: the last iteration; iterations are numbered from 0, as in the original
                library, so ``max_iter + 1`` steps at most. None (the default): no limit,
                something else ends the run. A re-iterable source (stream, list) with
                ``max_iter=None`` needs an extension that ends training (`FinishAfter`,
                `EarlyStopping`, or one with ``ends_training = True``): otherwise `fit`
                raises `TrainingError` before the first step. A one-pass source (a
                generator) ends the run when exhausted; an endless one such as `minibatch`
                runs until Ctrl-C, which stops cleanly after the current step.
            save_freq: every this many iterations write the parameters
                (``{graph}-{name}-{iteration}.npz``) and the checkpoint to
                ``output_directory``.
            print_freq: print and log a progress line at every iteration that is a non-zero
                multiple of this (``print_freq=10**9`` and 0 print none; the final line
                saying what ended the run is printed whatever this says, unless
                ``verbose=0``).
            nan_exceptions: how many non-finite losses to recover from (restoring the
                parameters and optimizer state of the last snapshot, see
                ``nan_snapshot_every``) before stopping.
            nan_snapshot_every: with ``nan_exceptions > 0``, snapshot the parameters and
                optimizer state before every this many steps (default 10: a rollback loses
                at most the 10 steps before the bad one; 1 loses none but copies the
                parameters and optimizer state at every step, which costs about 40% of a
                step for a 784-512-10 MLP with Adam at batch 128 on CPU).
            resume: a checkpoint (e.g. ``driver.checkpoint_path`` of an earlier run) to
                continue from: parameters, optimizer state, counters, hyperparameters, random
                states and extension states are restored (the checkpoint's hyperparams, e.g. a
                dropped learning rate, win over ``hyperparams``), so the run reaches the
                numbers an uninterrupted one would (same source, same extensions). Without it,
                a second ``fit`` on the same source continues the pass the last one stopped in.
                Any number of processes may resume it (on several machines: shared files).
            precision: None or 'fp32' (default): the parameters' dtype; 'bf16': steps under
                bfloat16 `torch.autocast` (convolutions and matrix products in bfloat16;
                parameters, updates and the loss float32), on either engine; it pays on GPUs
                with bfloat16 tensor cores and CPUs with AMX (see `optimus.train.precision`).

        Under ``torchrun``, ``fit`` joins the process group (gloo on CPU, NCCL on CUDA),
        starts every rank from rank 0's state, and each rank trains on its share of every
        global batch with gradients summed over the ranks (weighted by rows): N processes
        take the step one process takes. Losses, monitored values and decisions are global;
        rank 0 alone writes. Every rank must draw the same global batches (seed the
        shuffling); see `optimus.distributed`.

        Returns:
            The statistics table (`Stats`): one row per step (key, timestamp, iteration,
            epoch, loss) plus monitored values on the rows where they were measured.

        Raises:
            TrainingError: a bad ``max_iter``, or nothing would end the run; another rank
                failed or timed out (``OPTIMUS_DIST_TIMEOUT``), or ranks drew other batches.
            ConfigError: an unknown ``precision``.
        """
        self._check_ending(source, max_iter)
        if not isinstance(print_freq, int) or isinstance(print_freq, bool) or print_freq < 0:
            raise TrainingError(f"Driver.fit: print_freq must be an int >= 0, got "
                                f"{print_freq!r}")
        self._precision = step_context(self.graph, precision)
        self.nan_recovery = NaNRecovery(self.graph, nan_exceptions, nan_snapshot_every)
        self.hyperparams = dict(hyperparams or {})
        self._scale_out = ScaleOut(self.graph)  # joins torchrun's process group, if any
        main = distributed.is_main()
        self.reporter.log_file = self.log_file if main else None
        self.reporter.open(console=main)
        try:
            if resume is not None:
                resume_driver(self, resume, self.hyperparams)
            else:
                self.replay.continue_with(source, self.position)
            self.max_iter, self.print_freq, self.save_freq = max_iter, print_freq, save_freq
            self.stop_reason = None
            if self.output_directory is not None and main:
                self.output_directory.mkdir(parents=True, exist_ok=True)
                save(self.graph, self.output_directory / f"{self.graph.name}-{self.name}.json")
        except BaseException:
            self.reporter.close()
            raise
        self._interrupt = _DeferInterrupt()
        failed = False
        try:
            self.reporter.start_bar(None if max_iter is None else max_iter + 1,
                                    self.iteration, self.graph.name)
            with self._interrupt:
                self._scale_out.start()  # rank 0's parameters and optimizer state everywhere
                for ext in self.extensions:
                    ext.before_training(self)
                load_extension_states(self)
                while self.stop_reason is None:
                    if self.max_iter is not None and self.iteration > self.max_iter:
                        self.stop(f"reached max_iter={self.max_iter}")
                        break
                    self._run_pass(source)
        except KeyboardInterrupt:
            self._in_step = False
            self.stop(f"interrupted after iteration {self.iteration}")
        except BaseException:
            failed = True  # a step may be half taken: keep the last good checkpoint
            raise
        finally:
            self._in_step = False
            self._scale_out.close()
            for ext in self.extensions:
                ext.after_training(self)
            if not failed:
                self.save_checkpoint()
            self._report_end()
            self.reporter.close()
        return self.stats

    def _report_end(self) -> None:
        """The final line: what ended the run, where it stands, the last loss."""
        loss = self.stats.last("loss")
        level = logging.WARNING if self.stop_reason and (
            self.stop_reason.startswith(("non-finite", "interrupted"))) else logging.INFO
        steps = f"{self.iteration} step{'s' if self.iteration != 1 else ''}"
        epochs = f"{self.epoch} epoch{'s' if self.epoch != 1 else ''}"
        self.report(f"Training stopped: {self.stop_reason} ({steps}, {epochs} completed"
                    + ("" if loss is None else f", last loss {loss:0.4f}") + ")", level)


__all__ = ["Driver", "Extension"]
