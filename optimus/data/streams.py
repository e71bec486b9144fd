"""Batch sources for `Driver.fit` and monitors: iterables of dicts keyed by a graph's inputs.

- `minibatch`: the notebook's endless random batches (one pass, never exhausted by itself).
- `Stream`: a finite, re-iterable source; one pass over it is an epoch. Its batches for pass
  ``e`` starting at batch ``k`` come from `Stream.epoch_iterator` ``(e, k)``, which is how a
  resumed run rejoins the data exactly where the interrupted one stopped.
- `DataStream`: NumPy arrays cut into batches by a `Scheme` (Fuel's ``DataStream``).
- `LoaderStream`: a `torch.utils.data.DataLoader` (or any re-iterable of tuples) as dicts.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from .schemes import Scheme

Batch = dict[str, Any]


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


class Stream:
    """Base class of finite, re-iterable batch sources; a pass over one is an epoch.

    Subclasses define `epoch_iterator`. Iterating a stream directly (``for batch in stream``)
    runs passes 0, 1, 2, ... in turn; `Driver.fit` asks for the pass it is on instead.
    """

    def __init__(self) -> None:
        self._passes = 0

    def epoch_iterator(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """The batches of pass ``epoch`` from batch ``start`` on.

        Implementations position themselves before returning (not lazily on the first
        ``next``), so that any random state they draw at the start of a pass is drawn when
        the driver expects it.
        """
        raise NotImplementedError(f"{type(self).__name__} must define epoch_iterator()")

    def __iter__(self) -> Iterator[Batch]:
        iterator = self.epoch_iterator(self._passes)
        self._passes += 1
        return iterator

    def __len__(self) -> int:
        """Batches per pass, where known."""
        raise TypeError(f"{type(self).__name__} does not know its length")


def open_epoch(source: Iterable[Batch], epoch: int = 0, start: int = 0) -> Iterator[Batch]:
    """An iterator over pass ``epoch`` of ``source`` from batch ``start`` on.

    A `Stream` positions itself; any other iterable is iterated afresh and its first ``start``
    batches are drawn and dropped right away (exact for sources that give the same batches
    for the same random state, e.g. a DataLoader whose shuffling uses torch's global RNG).
    """
    if isinstance(source, Stream):
        return source.epoch_iterator(epoch, start)
    iterator = iter(source)
    end = object()
    for _ in range(start):
        if next(iterator, end) is end:
            break
    return iterator


def batch_size_of(batch: Mapping[str, Any]) -> int:
    """The number of examples in ``batch``: the length of its first non-scalar entry."""
    for value in batch.values():
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    raise InputError(f"cannot tell the batch size of a batch with entries "
                     f"{list(batch)}: none of them is an array with a batch axis")


class DataStream(Stream):
    """Batches of NumPy arrays in the order of an iteration scheme (Fuel's ``DataStream``).

    Args:
        sources: ``{input name: array}``, all with the same first dimension, e.g.
            ``{'data': X, 'labels': y}``.
        scheme: which rows form each batch, e.g. ``SequentialScheme(len(X), 256)``.

    Sequential batches are zero-copy views of the arrays; shuffled batches are copies.
    """

    def __init__(self, sources: Mapping[str, Any], scheme: Scheme):
        super().__init__()
        if not isinstance(sources, Mapping) or not sources:
            raise ConfigError("DataStream: sources must be a non-empty dict of arrays keyed by "
                              "input name, e.g. {'data': X, 'labels': y}", field="sources")
        if not isinstance(scheme, Scheme):
            raise ConfigError(f"DataStream: scheme must be a Scheme such as "
                              f"SequentialScheme(num_examples, batch_size), got {scheme!r}",
                              field="scheme")
        self.sources = {}
        for name, array in sources.items():
            array = array if hasattr(array, "shape") else np.asarray(array)
            if len(array.shape) == 0 or array.shape[0] != scheme.num_examples:
                raise ConfigError(
                    f"DataStream: source {name!r} has shape {tuple(array.shape)} but the "
                    f"scheme covers {scheme.num_examples} examples; give every source "
                    f"{scheme.num_examples} rows", field="sources")
            self.sources[name] = array
        self.scheme = scheme

    def __len__(self) -> int:
        return len(self.scheme)

    def epoch_iterator(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        batches = self.scheme.batches(epoch)[start:]
        return ({name: array[rows] for name, array in self.sources.items()}
                for rows in batches)

    def __repr__(self) -> str:
        return f"DataStream(sources={list(self.sources)}, scheme={self.scheme!r})"


class LoaderStream(Stream):
    """A `torch.utils.data.DataLoader` (or any re-iterable of tuples or dicts) as a stream of
    dicts keyed by input name.

    Args:
        loader: yields ``(x, y, ...)`` tuples or dicts; tensors are passed on as they are.
        names: the input name of each tuple position, e.g. ``('data', 'labels')``; for a
            loader of dicts, None keeps its keys.
    """

    def __init__(self, loader: Iterable[Any], names: Sequence[str] | None = None):
        super().__init__()
        if isinstance(loader, Iterator):
            raise ConfigError("LoaderStream: the loader must be re-iterable (a DataLoader or "
                              "list), not a one-pass iterator or generator", field="loader")
        self.loader = loader
        self.names = None if names is None else tuple(names)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def _as_dict(self, item: Any) -> Batch:
        if isinstance(item, Mapping):
            return dict(item)
        if self.names is None:
            raise InputError(f"LoaderStream: the loader yields {type(item).__name__}, not dicts; "
                             f"pass names=('data', 'labels', ...) to name its entries")
        if len(item) != len(self.names):
            raise InputError(f"LoaderStream: the loader yields {len(item)} entries per batch "
                             f"but names has {len(self.names)}: {self.names}")
        return dict(zip(self.names, item))

    def epoch_iterator(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        return map(self._as_dict, open_epoch(self.loader, epoch, start))


__all__ = ["minibatch", "Stream", "DataStream", "LoaderStream", "open_epoch", "batch_size_of"]
