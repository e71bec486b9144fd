"""`Stats`: the training record `Driver.fit` returns: one row per iteration, exportable.

Columns: ``key`` (the run's name), ``timestamp`` (seconds since the epoch, when the step
ended), ``iteration`` (from 0), ``epoch`` (the pass the step belongs to, from 0), ``loss`` (the
step's training loss, computed before its update) and every monitored value (e.g.
``test_accuracy``), which appears only on the rows where it was measured: the row of the step
after which the `Monitor` ran.

Reading it::

    stats = driver.fit(...)
    stats.columns                  # ['key', 'timestamp', 'iteration', 'epoch', 'loss', ...]
    stats["loss"]                  # float array, one value per step
    stats["test_accuracy"]         # float array, NaN on the rows where it was not measured
    stats.last("test_accuracy")    # the most recent measured value (None if never)
    steps, acc = stats.recorded("test_accuracy")  # only the measured rows
    stats.rows[-1]                 # the last row as a dict
    stats.to_csv("log.csv"); stats.plot("loss", path="loss.png")

With a `Monitor` that runs after every epoch, ``stats.recorded("test_accuracy")[1][k]`` is the
value after epoch ``k + 1``; it sits on the last step of that epoch, whose ``epoch`` column is
``k`` (epochs are counted from 0 while they run).
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..serialize import atomic_write


class Stats:
    """A small column table: rows of ``{column: value}``; columns appear as rows bring them.

    ``stats['loss']`` is a NumPy array of a column (NaN where a row lacks it); ``len(stats)``
    is the number of rows (steps); iterating gives the rows as dicts.

    Attributes:
        rows: the rows, oldest first, each a dict of the columns it has.
        columns: every column name, in order of first appearance.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []

    def append(self, row: Mapping[str, Any]) -> None:
        """Add a row; unseen keys become new columns."""
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append(dict(row))

    def update_last(self, values: Mapping[str, Any]) -> None:
        """Add values (e.g. a monitored score) to the most recent row."""
        if not self.rows:
            raise IndexError("Stats.update_last: the table has no rows yet; append one first")
        for key in values:
            if key not in self.columns:
                self.columns.append(key)
        self.rows[-1].update(values)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, column: str) -> np.ndarray:
        """Column ``column`` over all rows: a float array (NaN where a row lacks it), or an
        object array for text columns.

        Raises:
            KeyError: no such column (the message lists the columns).
        """
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; columns are {self.columns}")
        values = [row.get(column, np.nan) for row in self.rows]
        try:
            return np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            return np.asarray(values, dtype=object)

    def last(self, column: str) -> Any:
        """The most recent value of ``column`` (None if it was never recorded)."""
        for row in reversed(self.rows):
            if column in row:
                return row[column]
        return None

    def recorded(self, column: str, x: str = "iteration") -> tuple[np.ndarray, np.ndarray]:
        """The rows where ``column`` was recorded: ``(their x values, the values)``, e.g.
        ``steps, accuracy = stats.recorded('test_accuracy')`` (``x='epoch'`` for the epoch
        column, ``x='timestamp'`` for wall time).

        Raises:
            KeyError: no such column.
        """
        for name in (column, x):
            if name not in self.columns:
                raise KeyError(f"no column {name!r}; columns are {self.columns}")
        rows = [row for row in self.rows if column in row]
        return (np.asarray([row.get(x, np.nan) for row in rows], dtype=float),
                np.asarray([row[column] for row in rows], dtype=float))

    def to_csv(self, path: str | Path | None = None) -> str:
        """The table as CSV text (empty cells where a row lacks a column); also written
        (atomically) to ``path`` when given."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        text = buffer.getvalue()
        if path is not None:
            atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        return text

    def plot(self, *columns: str, x: str = "iteration", ax: Any = None,
             path: str | Path | None = None) -> Any:
        """Plot columns (default: loss and every monitored value) against ``x`` with
        matplotlib (the optional ``plot`` extra); saves the figure to ``path`` when given.

        Returns:
            The matplotlib ``Axes``.
        """
        try:
            if ax is None and path is not None:  # a file only: no pyplot, no GUI backend
                from matplotlib.figure import Figure
                ax = Figure().add_subplot(111)
            elif ax is None:
                import matplotlib.pyplot as plt
                ax = plt.figure().add_subplot(111)
        except ImportError as err:
            raise ImportError("Stats.plot needs matplotlib: pip install 'optimus[plot]'") from err
        if not columns:
            columns = tuple(c for c in self.columns
                            if c not in ("key", "timestamp", "iteration", "epoch"))
        xs = self[x]
        for column in columns:
            ys = self[column].astype(float)
            keep = ~np.isnan(ys)
            style = "-" if keep.mean() > 0.5 else "o-"  # sparse (monitored) values get markers
            ax.plot(xs[keep], ys[keep], style, label=column)
        ax.set_xlabel(x)
        ax.legend()
        if path is not None:
            fmt = Path(path).suffix.lstrip(".") or "png"
            atomic_write(path, lambda f: ax.figure.savefig(f, format=fmt))
        return ax

    # -- as arrays, for checkpoints -------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """One array per column: int64 for whole-number columns present on every row, float64
        (NaN where missing) for other numbers, strings otherwise."""
        arrays = {}
        for column in self.columns:
            values = [row.get(column) for row in self.rows]
            numbers = [v for v in values if isinstance(v, (int, float, np.number))
                       and not isinstance(v, bool)]
            if len(numbers) == len(values) and all(isinstance(v, (int, np.integer))
                                                   for v in values):
                arrays[column] = np.asarray(values, dtype=np.int64)
            elif len(numbers) == len(values) - values.count(None):
                arrays[column] = np.asarray([np.nan if v is None else v for v in values],
                                            dtype=np.float64)
            else:
                arrays[column] = np.asarray(["" if v is None else str(v) for v in values])
        return arrays

    @classmethod
    def from_arrays(cls, columns: Mapping[str, np.ndarray], order: list[str] | None = None
                    ) -> "Stats":
        """The inverse of `to_arrays` (missing values are left out of their rows)."""
        stats = cls()
        names = order or list(columns)
        length = len(next(iter(columns.values()))) if columns else 0
        for i in range(length):
            row: dict[str, Any] = {}
            for name in names:
                value = columns[name][i].item()
                if (isinstance(value, float) and math.isnan(value)) or value == "":
                    continue
                row[name] = value
            stats.append(row)
        stats.columns = [c for c in names if c in stats.columns] + [
            c for c in stats.columns if c not in names]
        for name in names:
            if name not in stats.columns:
                stats.columns.append(name)
        return stats

    def __repr__(self) -> str:
        return f"Stats({len(self.rows)} rows, columns={self.columns})"
