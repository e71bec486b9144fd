"""`SaveBest`: keep the model that scored best on a monitored value (Flux's "New best
accuracy! Saving model"), as a definition + parameters pair that `optimus.load` reads."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ... import distributed
from ...errors import ConfigError, TrainingError
from ...graph import Graph
from ...serialize import graph_from_dict, graph_to_dict, load, load_params, save
from ..driver import Driver
from ..extension import Extension
from .tracking import BestTracker


class SaveBest(Extension):
    """Saves ``graph``'s definition and parameters whenever ``record`` improves.

    Args:
        record: the monitored value to track, e.g. ``'test_accuracy'``.
        mode: 'min' or 'max'.
        graph: the graph to save, typically the predictor that shares the trainer's nodes
            (``SaveBest('test_accuracy', 'max', graph=predictor)``); default: the graph the
            driver trains.
        path: the parameter file (``.npz``) to write; the definition goes next to it with the
            suffix ``.json``. Default, when the driver has an output directory:
            ``{output_directory}/{graph.name}-{run name}-best.npz`` and ``...-best.json``.
            Without either, nothing is written and the best parameters stay in memory.
        min_delta: how much better a value must be to count.
        ties_improve: also save on a value equal to the best (Flux saves when
            ``acc >= best_acc``); default False.

    Attributes:
        params_path, definition_path: the pair written (atomically, definition first) on each
            improvement, or None when there is nowhere to write; after training,
            ``optimus.load(save_best.definition_path, save_best.params_path)`` is the best
            model, ready to predict.
        best_params: ``{parameter: array}`` of the best model, also kept in memory.
        best, best_iteration: the best value and the step count when it was recorded.
    """

    def __init__(self, record: str, mode: str = "min", path: str | os.PathLike | None = None,
                 min_delta: float = 0.0, graph: Graph | None = None,
                 ties_improve: bool = False):
        if graph is not None and not isinstance(graph, Graph):
            raise ConfigError(f"SaveBest: graph must be an optimus Graph (e.g. the predictor), "
                              f"got {graph!r}", field="graph")
        self.tracker = BestTracker("SaveBest", record, mode, min_delta, ties_improve)
        self.graph = graph
        self.params_path = Path(path) if path is not None else None
        self.best_params: dict[str, np.ndarray] | None = None

    @property
    def definition_path(self) -> Path | None:
        """The definition written beside `params_path` (same name, suffix ``.json``)."""
        return None if self.params_path is None else self.params_path.with_suffix(".json")

    @property
    def path(self) -> Path | None:
        """The parameter file; the same as `params_path`."""
        return self.params_path

    @property
    def best(self) -> float | None:
        return self.tracker.best

    @property
    def best_iteration(self) -> int | None:
        return self.tracker.best_iteration

    def before_training(self, driver: Driver) -> None:
        if self.graph is None:
            self.graph = driver.graph
        if self.params_path is None and driver.output_directory is not None:
            self.params_path = (driver.output_directory
                                / f"{self.graph.name}-{driver.name}-best.npz")

    def after_monitor(self, driver: Driver, values: Mapping[str, float]) -> None:
        record = self.tracker.record
        if record not in values or not self.tracker.update(values[record], driver.steps_done):
            return
        graph = self.graph if self.graph is not None else driver.graph
        self.best_params = graph.param_values
        where = ""
        if self.params_path is not None and self.definition_path is not None \
                and distributed.is_main():  # every rank keeps the values, rank 0 writes
            self.params_path.parent.mkdir(parents=True, exist_ok=True)
            save(graph, self.definition_path, self.params_path)  # a consistent pair
            where = f"; saved to {self.definition_path} + {self.params_path.name}"
        driver.report(f"New best {record}={values[record]:.4f}{where}")

    def load(self) -> Graph:
        """A new graph with the best parameters: read from the saved pair if there is one,
        else built from the named graph's definition and the parameters kept in memory.

        Raises:
            TrainingError: no value has been recorded yet.
        """
        if self.best_params is None and not (self.params_path and self.params_path.exists()):
            raise TrainingError(f"SaveBest({self.tracker.record!r}): no best model yet; "
                                f"nothing was monitored")
        if self.params_path is not None and self.params_path.exists():
            return load(self.definition_path, self.params_path)  # type: ignore[arg-type]
        assert self.graph is not None and self.best_params is not None
        graph = graph_from_dict(graph_to_dict(self.graph), source=f"SaveBest {self.graph.name}")
        graph.param_values = self.best_params
        return graph

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = self.tracker.state_dict()
        if self.best_params is not None and self.params_path is None:
            state["params"] = self.best_params  # nowhere else to find them after a resume
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        if "params" in state:
            self.best_params = dict(state["params"])
        elif self.params_path is not None and self.params_path.exists():
            self.best_params = load_params(self.params_path)
