"""Each rank's part of a global batch: contiguous rows, in the order one process sees them.

Rank ``r`` of ``n`` takes rows ``[r * B // n, (r + 1) * B // n)`` of a batch of ``B`` rows, so
the parts are in order, cover the batch exactly once and differ in size by at most one row (an
uneven tail, e.g. the last, smaller batch of a pass, is split the same way). The slice of an
array is a view: no copy. Weighting each rank's mean by ``rows / B`` gives the global mean.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..data.streams import batch_size_of


def shard_rows(total: int, rank: int, world_size: int) -> slice:
    """The rows of a ``total``-row batch that rank ``rank`` of ``world_size`` takes."""
    return slice(rank * total // world_size, (rank + 1) * total // world_size)


def shard_batch(batch: Mapping[str, Any], rank: int, world_size: int
                ) -> tuple[dict[str, Any], int, int]:
    """Rank ``rank``'s part of ``batch``: entries with the batch's number of rows are sliced,
    the others (scalars, hyperparameters) are passed on whole.

    Returns:
        ``(part, rows of the part, rows of the whole batch)``.
    """
    total = batch_size_of(batch)
    rows = shard_rows(total, rank, world_size)
    part = {}
    for name, value in batch.items():
        shape = getattr(value, "shape", None)
        part[name] = value[rows] if shape is not None and len(shape) and shape[0] == total \
            else value
    return part, rows.stop - rows.start, total


__all__ = ["shard_rows", "shard_batch"]
