"""Summing a graph's gradients over the ranks before each update, on either engine.

- Fast engine: a `optimus.fast.reduce.GradientReducer` in ``engine.grad_sync``: bucketed
  asynchronous all-reduces launched during the backward pass, as each bucket completes.
- Reference engine: its `Trainer` differentiates with ``torch.autograd.grad`` (not
  ``backward``), which DDP's hooks do not see; so a step pre-hook on the graph's torch
  optimizer sums the gradients, in buckets, right before ``optimizer.step()`` (after the
  whole backward: no overlap on this path).

Either way each rank's gradient is scaled by its share of the global batch's rows first
(`weight`), so N processes take the step one process takes on the whole batch.
"""
from __future__ import annotations

from typing import Any

import torch

from ..fast.engine import FastEngine
from ..fast.reduce import GradientReducer
from .buckets import DEFAULT_BUCKET_BYTES, make_buckets


class GradientSync:
    """Attach to ``graph`` so that its update steps use gradients summed over the ranks;
    `close` detaches.

    Args:
        graph: a trainable `optimus.Graph`.
        bucket_bytes: about how many bytes of gradients each all-reduce carries.

    Attributes:
        weight: this rank's share of the current global batch (rows here / rows in all);
            the driver sets it before every step.
    """

    def __init__(self, graph: Any, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.engine = graph.engine
        self.bucket_bytes = bucket_bytes
        self._reducer: GradientReducer | None = None
        self._hook: Any = None
        self._buckets: dict[tuple[int, ...], list] = {}
        self._weight = 1.0
        if isinstance(self.engine, FastEngine):
            self._reducer = self.engine.grad_sync = GradientReducer(bucket_bytes)
        else:
            self._hook = graph.optimizer.register_step_pre_hook(self._before_step)

    @property
    def weight(self) -> float:
        """This rank's share of the global batch's rows."""
        return self._weight

    @weight.setter
    def weight(self, value: float) -> None:
        self._weight = float(value)
        if self._reducer is not None:
            self._reducer.weight = self._weight

    def set_flag(self, value: float) -> None:
        """A number to sum with the fast engine's gradients in the next step (e.g. 1.0 for
        "stop requested"); the reference engine ignores it."""
        if self._reducer is not None:
            self._reducer.flag = float(value)

    def take_summed(self) -> tuple[float, float] | None:
        """After a fast-engine step: the sums over the ranks of the weighted loss and of the
        flag, carried by the last gradient bucket (None on the reference engine, or when
        the step summed no gradient)."""
        if self._reducer is None:
            return None
        summed, self._reducer.summed = self._reducer.summed, None
        return summed

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]
                  if p.grad is not None]
        if not params:
            return
        key = tuple(id(p) for p in params)
        buckets = self._buckets.get(key)
        if buckets is None:
            # the last parameters' gradients first, as a backward pass produces them
            buckets = self._buckets[key] = make_buckets(params[::-1], self.bucket_bytes)
        for bucket in buckets:
            bucket.launch([p.grad for p in bucket.params], self._weight)
        for bucket in buckets:
            for p, grad in zip(bucket.params, bucket.wait()):
                p.grad = grad

    def close(self) -> None:
        """Detach: the graph trains on its own gradients again."""
        if self._reducer is not None and self.engine.grad_sync is self._reducer:
            self.engine.grad_sync = None
        if self._hook is not None:
            self._hook.remove()
        self._reducer = self._hook = None


__all__ = ["GradientSync"]
