"""Batch sources: the notebook's random `minibatch` generator."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def minibatch(data: np.ndarray, labels: np.ndarray, batch_size: int,
              max_iter: float = np.inf, rng: np.random.RandomState | None = None
              ) -> Iterator[dict[str, np.ndarray]]:
    """Endless random batches ``{'data': ..., 'labels': ...}``, reshuffling after each pass.

    Args:
        data, labels: arrays with the same first dimension.
        batch_size: rows per batch.
        max_iter: stop after this many batches.
        rng: the random state to draw from (default: NumPy's global state, as the notebook).
    """
    if len(data) != len(labels):
        raise ValueError(f"minibatch: data has {len(data)} rows but labels has {len(labels)}")
    if batch_size <= 0:
        raise ValueError(f"minibatch: batch_size must be positive, got {batch_size}")
    rng = rng if rng is not None else np.random
    num_points = len(labels)
    order = rng.permutation(num_points)
    idx, count = 0, 0
    while count < max_iter:
        take = []
        while len(take) < batch_size:
            chunk = order[idx: idx + batch_size - len(take)]
            take.extend(chunk.tolist())
            idx += len(chunk)
            if idx >= num_points:
                idx = 0
                rng.shuffle(order)
        yield {"data": data[take], "labels": labels[take]}
        count += 1
