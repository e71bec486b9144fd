"""`Monitor`: evaluate any graph's outputs and metrics on a stream while training (Blocks'
``DataStreamMonitoring``, Flux's per-epoch test accuracy)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ... import distributed
from ...data.streams import batch_size_of
from ...errors import ConfigError, TrainingError
from ...graph import Graph
from ..driver import Driver
from ..metrics import Metric
from .every import Periodic


class Monitor(Periodic):
    """Evaluates ``graph`` on every batch of ``source`` and records the averages.

    Names: each scalar output and each metric is recorded as ``{prefix}_{name}``
    (``Monitor(predictor, test, metrics={'accuracy': accuracy()}, prefix='test')`` records
    ``test_loss`` and ``test_accuracy``); without a prefix, as ``{name}``.

    Averaging: the value is the mean over every example of the whole stream: each batch's
    value (a scalar output, or a metric's batch mean) weighted by the batch's number of rows,
    so a smaller last batch counts for its size, and the result equals evaluating the whole
    set at once (for outputs that are means over rows, such as a mean loss).

    Schedule: after every ``every_n_epochs`` completed epochs (default: every epoch) and/or
    every ``every_n_iterations`` steps (after steps n-1, 2n-1, ...: counted in steps taken).
    The values go into the driver's `Stats` on the row of the step just taken (NaN in the
    other rows), into ``driver.monitored``, to the console and log (``driver.report``), and to
    every extension's ``after_monitor`` (`SaveBest`, `EarlyStopping`, `ReduceLROnPlateau`).

    Evaluation is not a training call: ``graph`` gets a learning rate of 0 for any
    learning-rate Input, so no parameter moves and noise and dropout nodes are off (see
    `optimus.nodes.regularize`: a training call is a call that takes an update step). It runs
    in chunks of the graph's ``chunk_size`` rows when batches are large.

    Args:
        graph: any graph sharing the trainer's nodes (a predictor), or the trainer itself.
        source: a finite, re-iterable stream of batches (e.g. the test set in batches of 1024).
        outputs: scalar outputs of ``graph`` to average (default: all of them).
        metrics: ``{name: metric}``, each ``metric(outputs, batch) -> float`` a batch mean,
            e.g. ``{'error': optimus.train.error_rate('likelihoods', 'labels')}``.
        prefix: prepended to each name with an underscore.
        every_n_epochs, every_n_iterations: when to monitor (default: after every epoch).
    """

    def __init__(self, graph: Graph, source: Iterable[Mapping[str, Any]],
                 outputs: Sequence[str] | None = None,
                 metrics: Mapping[str, Metric] | None = None, prefix: str = "",
                 every_n_epochs: int | None = None, every_n_iterations: int | None = None):
        if not isinstance(graph, Graph):
            raise ConfigError(f"Monitor: graph must be an optimus Graph, got {graph!r}",
                              field="graph")
        if isinstance(source, Iterator):
            raise ConfigError("Monitor: the source must be re-iterable (a stream or list) "
                              "since it is evaluated again and again", field="source")
        scalars = [name for name in graph.outputs if graph.shapes[name] == ()]
        outputs = list(scalars if outputs is None else outputs)
        for name in outputs:
            if name not in graph.outputs:
                raise ConfigError(f"Monitor: graph '{graph.name}' has no output {name!r}; it "
                                  f"has {list(graph.outputs)}", field="outputs")
            if graph.shapes[name] != ():
                raise ConfigError(f"Monitor: output {name!r} of graph '{graph.name}' has shape "
                                  f"{graph.shapes[name]}; only scalars can be averaged, use a "
                                  f"metric (e.g. error_rate({name!r}, 'labels'))",
                                  field="outputs")
        self.metrics = dict(metrics or {})
        for name, metric in self.metrics.items():
            if not callable(metric):
                raise ConfigError(f"Monitor: metric {name!r} must be a function "
                                  f"f(outputs, batch) -> float, got {metric!r}", field="metrics")
        if not outputs and not self.metrics:
            raise ConfigError(f"Monitor: graph '{graph.name}' has no scalar output; name "
                              f"metrics to compute", field="metrics")
        self.graph, self.source, self.outputs, self.prefix = graph, source, outputs, prefix
        super().__init__(every_n_epochs, every_n_iterations)

    def name_of(self, name: str) -> str:
        """The recorded name of output or metric ``name``."""
        return f"{self.prefix}_{name}" if self.prefix else name

    def _feed(self, driver: Driver | None, batch: Mapping[str, Any]) -> dict[str, Any]:
        feed = {k: v for k, v in batch.items() if k in self.graph.inputs}
        for name in self.graph.inputs:
            if name in feed:
                continue
            if name in self.graph.updates:
                feed[name] = 0.0  # a learning rate: evaluate, never train on this data
            elif driver is not None and name in driver.hyperparams:
                feed[name] = driver.hyperparams[name]
            else:
                raise TrainingError(f"Monitor: graph '{self.graph.name}' needs input {name!r} "
                                    f"but the batches have {list(batch)}")
        return feed

    def evaluate(self, driver: Driver | None = None) -> dict[str, float]:
        """One pass over the source: ``{recorded name: mean}``.

        Under several processes (``torchrun``), each rank evaluates its own rows of every
        batch and the sums are added over the ranks, so every rank records the same values
        (those of the whole stream) in about 1/N of the time. Every rank must call it then.
        """
        sharded = distributed.active()
        totals = dict.fromkeys([*self.outputs, *self.metrics], 0.0)
        count = 0
        for batch in self.source:
            if sharded:
                batch, size, _ = distributed.shard_batch(batch, distributed.rank(),
                                                         distributed.world_size())
                if size == 0:
                    continue
            else:
                size = batch_size_of(batch)
            outputs = self.graph(**self._feed(driver, batch))
            for name in self.outputs:
                totals[name] += float(outputs[name]) * size
            for name, metric in self.metrics.items():
                totals[name] += float(metric(outputs, batch)) * size
            count += size
        if sharded:
            *sums, count = distributed.all_reduce_sum([*totals.values(), count])
            totals = dict(zip(totals, sums))
        if count == 0:
            raise TrainingError(f"Monitor ({self.prefix or self.graph.name}): the source "
                                f"yielded no batches")
        return {self.name_of(name): total / count for name, total in totals.items()}

    def fire(self, driver: Driver) -> None:
        """Evaluate now and record the values (what the schedule triggers)."""
        values = self.evaluate(driver)
        driver.report(f"Monitor {self.prefix or self.graph.name} after {driver.epoch} epochs, "
                      f"{driver.steps_done} steps: "
                      + "  ".join(f"{k}={v:.4f}" for k, v in values.items()))
        driver.record(values)
