"""Iteration schemes (as in Fuel): which examples form each batch of a pass over a dataset.

A scheme's batches for a pass depend only on its seed and the pass number (``epoch``), never on
hidden global state, so a stream can be rewound to any batch of any pass: that is what lets a
checkpointed run resume to exactly the numbers of an uninterrupted one.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

Batch = slice | np.ndarray


def _positive_int(owner: str, field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{owner}: {field} must be a positive int, got {value!r}", field=field)
    return int(value)


class Scheme:
    """Base class: cuts ``range(num_examples)`` into batches of ``batch_size`` (the last one
    smaller unless ``drop_last``), in the order `order` gives for each pass.

    Args:
        num_examples: the dataset's size.
        batch_size: examples per batch.
        drop_last: leave out a final, smaller batch.
    """

    def __init__(self, num_examples: int, batch_size: int, drop_last: bool = False):
        owner = type(self).__name__
        self.num_examples = _positive_int(owner, "num_examples", num_examples)
        self.batch_size = _positive_int(owner, "batch_size", batch_size)
        self.drop_last = bool(drop_last)

    def order(self, epoch: int) -> np.ndarray | None:
        """The example order for pass ``epoch``; None means ``0, 1, 2, ...``."""
        raise NotImplementedError(f"{type(self).__name__} must define order(epoch)")

    def __len__(self) -> int:
        """Batches per pass."""
        full, rest = divmod(self.num_examples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, epoch: int = 0) -> list[Batch]:
        """The batches of pass ``epoch``: slices (zero-copy views) or index arrays."""
        order = self.order(epoch)
        cuts = range(0, len(self) * self.batch_size, self.batch_size)
        if order is None:
            return [slice(i, min(i + self.batch_size, self.num_examples)) for i in cuts]
        return [order[i:i + self.batch_size] for i in cuts]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_examples={self.num_examples}, "
                f"batch_size={self.batch_size})")


class SequentialScheme(Scheme):
    """Batches in dataset order, the same every pass (Fuel's ``SequentialScheme``)."""

    def order(self, epoch: int) -> None:
        return None


class ShuffledScheme(Scheme):
    """A fresh random order every pass (Fuel's ``ShuffledScheme``).

    Args:
        seed: the order of pass ``e`` is drawn from ``numpy.random.default_rng([seed, e])``.
            None draws a seed from NumPy's global random state at construction, so that
            ``numpy.random.seed(...)`` makes a whole script reproducible.
    """

    def __init__(self, num_examples: int, batch_size: int, drop_last: bool = False,
                 seed: int | None = None):
        super().__init__(num_examples, batch_size, drop_last)
        self.seed = int(np.random.randint(2**31)) if seed is None else int(seed)

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_examples)


__all__ = ["Scheme", "SequentialScheme", "ShuffledScheme"]
