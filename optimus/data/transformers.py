"""Transformers (as in Fuel): streams that change each batch of another stream on the fly.

``FlattenFeatures(DataStream(...))`` flattens images to vectors; `Cast`, `Scale` and
`AddNoise` change dtype, range and add Gaussian noise (training-time augmentation). ``which``
names the entries a transformer changes; the rest pass through untouched. Noise is drawn from
a generator seeded by ``(seed, epoch, batch)``, so a resumed run sees the same noise as an
uninterrupted one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..ports import as_dtype
from .streams import Batch, Stream, open_epoch


def _is_float(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    return np.issubdtype(np.asarray(value).dtype, np.floating)


class Transformer(Stream):
    """Base class: wraps ``source`` and maps each batch through `transform`.

    Args:
        source: a `Stream`, or any re-iterable of dicts (a list, a `LoaderStream`).
        which: the entries to change; None means every entry the transformer applies to.
    """

    def __init__(self, source: Iterable[Batch], which: Sequence[str] | str | None = None):
        super().__init__()
        if isinstance(source, Iterator):
            raise ConfigError(f"{type(self).__name__}: the source must be re-iterable (a "
                              f"stream or list), not a one-pass iterator", field="source")
        self.source = source
        self.which = (which,) if isinstance(which, str) else (
            None if which is None else tuple(which))

    def applies_to(self, name: str, value: Any) -> bool:
        """Whether entry ``name`` is changed when ``which`` is None (default: all)."""
        return True

    def apply(self, value: Any, epoch: int, index: int) -> Any:
        """The changed value of one entry of batch ``index`` of pass ``epoch``."""
        raise NotImplementedError(f"{type(self).__name__} must define apply()")

    def selected(self, batch: Batch) -> list[str]:
        """The entries of ``batch`` to change (``which``, or those `applies_to` accepts)."""
        if self.which is None:
            return [name for name, value in batch.items() if self.applies_to(name, value)]
        missing = [name for name in self.which if name not in batch]
        if missing:
            raise KeyError(f"{type(self).__name__}: batch has no entries {missing}; it has "
                           f"{list(batch)}")
        return list(self.which)

    def transform(self, batch: Batch, epoch: int, index: int) -> Batch:
        """The changed batch: `apply` on each selected entry."""
        out = dict(batch)
        for name in self.selected(batch):
            out[name] = self.apply(batch[name], epoch, index)
        return out

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def epoch_iterator(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        inner = open_epoch(self.source, epoch, start)
        return (self.transform(batch, epoch, start + i) for i, batch in enumerate(inner))


class FlattenFeatures(Transformer):
    """Reshape each example to a vector: ``(batch, 1, 28, 28)`` becomes ``(batch, 784)``
    (Fuel's ``Flatten``; named apart from the node `optimus.Flatten`, which flattens inside a
    graph).

    With ``which=None`` every entry with more than one axis is flattened (labels stay 1-D).
    """

    def applies_to(self, name: str, value: Any) -> bool:
        return len(getattr(value, "shape", ())) > 2

    def apply(self, value: Any, epoch: int, index: int) -> Any:
        return value.reshape(len(value), -1)


class Cast(Transformer):
    """Convert entries to ``dtype`` (e.g. ``'float32'``); which=None casts every entry."""

    def __init__(self, source: Iterable[Batch], dtype: str,
                 which: Sequence[str] | str | None = None):
        super().__init__(source, which)
        self.dtype = as_dtype(dtype, "Cast")

    def apply(self, value: Any, epoch: int, index: int) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(getattr(torch, self.dtype))
        return np.asarray(value).astype(self.dtype, copy=False)


class Scale(Transformer):
    """``value * scale + shift`` (Fuel's ``ScaleAndShift``), e.g. ``scale=1/255`` for pixels;
    which=None changes every floating-point entry."""

    def __init__(self, source: Iterable[Batch], scale: float, shift: float = 0.0,
                 which: Sequence[str] | str | None = None):
        super().__init__(source, which)
        self.scale, self.shift = float(scale), float(shift)

    def applies_to(self, name: str, value: Any) -> bool:
        return _is_float(value)

    def apply(self, value: Any, epoch: int, index: int) -> Any:
        out = value * self.scale + self.shift
        if isinstance(value, np.ndarray) and _is_float(value):
            out = out.astype(value.dtype, copy=False)  # float32 stays float32
        return out


class AddNoise(Transformer):
    """Add Gaussian noise ``N(0, std**2)`` to each value (Flux's ``augment``); which=None
    changes every floating-point entry.

    Args:
        std: the noise's standard deviation.
        seed: the noise of batch ``k`` of pass ``e`` comes from
            ``numpy.random.default_rng([seed, e, k])``; None draws a seed from NumPy's global
            random state at construction.
    """

    def __init__(self, source: Iterable[Batch], std: float,
                 which: Sequence[str] | str | None = None, seed: int | None = None):
        super().__init__(source, which)
        if not isinstance(std, (int, float)) or isinstance(std, bool) or std < 0:
            raise ConfigError(f"AddNoise: std must be a number >= 0, got {std!r}", field="std")
        self.std = float(std)
        self.seed = int(np.random.randint(2**31)) if seed is None else int(seed)

    def applies_to(self, name: str, value: Any) -> bool:
        return _is_float(value)

    def transform(self, batch: Batch, epoch: int, index: int) -> Batch:
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        out = dict(batch)
        for name in self.selected(batch):
            out[name] = self._noisy(batch[name], rng)
        return out

    def _noisy(self, value: Any, rng: np.random.Generator) -> Any:
        if isinstance(value, torch.Tensor):
            dtype = value.dtype if value.is_floating_point() else torch.float32
            noise = torch.from_numpy(rng.standard_normal(tuple(value.shape), np.float32))
            return value + self.std * noise.to(dtype)
        value = np.asarray(value)
        dtype = value.dtype if value.dtype in (np.float32, np.float64) else np.dtype("float32")
        return value + dtype.type(self.std) * rng.standard_normal(value.shape, dtype)


class Map(Transformer):
    """Apply ``function(batch) -> batch`` to each batch (any other change you need)."""

    def __init__(self, source: Iterable[Batch], function: Callable[[Batch], Batch]):
        super().__init__(source)
        self.function = function

    def transform(self, batch: Batch, epoch: int, index: int) -> Batch:
        return self.function(batch)


__all__ = ["Transformer", "FlattenFeatures", "Cast", "Scale", "AddNoise", "Map"]
