"""`Stats`: the training record `Driver.fit` returns: one row per iteration, exportable."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..serialize import atomic_write


class Stats:
    """A small column table: rows of ``{column: value}``; columns appear as rows bring them.

    ``stats['loss']`` is a NumPy array of a column (NaN where a row lacks it).
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
        for key in values:
            if key not in self.columns:
                self.columns.append(key)
        self.rows[-1].update(values)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; columns are {self.columns}")
        values = [row.get(column, np.nan) for row in self.rows]
        try:
            return np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            return np.asarray(values, dtype=object)

    def to_csv(self, path: str | Path | None = None) -> str:
        """The table as CSV text; also written (atomically) to ``path`` when given."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        text = buffer.getvalue()
        if path is not None:
            atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        return text

    def plot(self, *columns: str, x: str = "iteration", ax: Any = None) -> Any:
        """Plot columns (default: loss) against ``x`` with matplotlib (optional extra)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("Stats.plot needs matplotlib: pip install 'optimus[plot]'") from err
        ax = ax if ax is not None else plt.figure().add_subplot(111)
        xs = self[x]
        for column in columns or ("loss",):
            ys = self[column]
            keep = ~np.isnan(ys)
            ax.plot(xs[keep], ys[keep], label=column)
        ax.set_xlabel(x)
        ax.legend()
        return ax

    def __repr__(self) -> str:
        return f"Stats({len(self.rows)} rows, columns={self.columns})"
