"""Random numbers drawn per row of the global batch, so that N processes draw what one does.

Under ``torchrun`` each process computes its own rows of every global batch. A node that
drew noise or a dropout mask for its rows alone would give every rank the numbers one process
gives the batch's first rows: the same pattern on every rank, and a run unlike the
one-process run. During a multi-process training step, `Driver.fit` opens `global_rows` with
this process's place in the global batch; a node then draws for the whole global batch and
keeps its own rows (`draw_rows`). With the same seed on every rank, N processes thus draw
exactly the numbers one process draws, and the ranks' random generators stay in step. Outside
such a step (one process, evaluation), `draw_rows` is the plain draw.

The cost is drawing the whole batch's numbers on every rank (for the seed-004 noise, 100,352
normal numbers a step: about 0.5 ms on one thread).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch

#: (first row, rows, rows of the global batch) of this process's part, during a step (a context
#: variable: a thread or task of its own sees no other's window)
_window: ContextVar[tuple[int, int, int] | None] = ContextVar("optimus_draws_window",
                                                               default=None)


@contextmanager
def global_rows(start: int, rows: int, total: int) -> Iterator[None]:
    """Within this context, this process computes rows ``[start, start + rows)`` of a
    ``total``-row global batch: `draw_rows` draws for all of them and keeps those."""
    if not (0 <= start and rows >= 0 and start + rows <= total):
        raise ValueError(f"global_rows: rows [{start}, {start + rows}) are not inside a "
                         f"batch of {total}")
    token = _window.set((start, rows, total))
    try:
        yield
    finally:
        _window.reset(token)


def draw_rows(shape: Sequence[int], draw: Callable[[tuple[int, ...]], torch.Tensor]
              ) -> torch.Tensor:
    """``draw(shape)``, or, within `global_rows` and for a value with one row per batch row,
    this process's rows of ``draw((total, *shape[1:]))``."""
    shape = tuple(shape)
    window = _window.get()
    if window is None or not shape or shape[0] != window[1] or window[1] == window[2]:
        return draw(shape)
    start, rows, total = window
    return draw((total, *shape[1:]))[start:start + rows]


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """``torch.randn_like(x)`` (default memory order), drawn per global batch row."""
    return draw_rows(x.shape, lambda shape: torch.randn(shape, dtype=x.dtype,
                                                        device=x.device))


def dropout_mask(x: torch.Tensor, rate: float) -> torch.Tensor:
    """The scaled keep-mask ``F.dropout`` multiplies ``x`` by (default memory order), drawn
    per global batch row."""
    return draw_rows(x.shape, lambda shape: torch.nn.functional.dropout(
        torch.ones(shape, dtype=x.dtype, device=x.device), rate, True))


__all__ = ["global_rows", "draw_rows", "randn_like", "dropout_mask"]
