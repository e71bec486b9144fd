"""Gradient buckets: gradients packed into a few flat buffers, each summed over the ranks by
one `torch.distributed.all_reduce` (as DDP does: fewer, larger messages).

Each rank scales its gradients by ``weight = rows on this rank / rows in the global batch``
while packing, so the sum over ranks is the gradient of the mean over every row of the global
batch, whatever the split; a penalty term (weight decay) is counted once, since the weights
add up to 1.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence

import torch
import torch.distributed as dist

from .group import collective

Tensor = torch.Tensor

#: Bytes per bucket: large enough for few messages, small enough that the first buckets
#: start travelling while the backward pass computes the rest.
DEFAULT_BUCKET_BYTES = 1 << 20
#: How long `Bucket.wait` polls a CPU (gloo) all-reduce, yielding the core between polls,
#: before it blocks. A blocked process's core may go idle, and waking it costs milliseconds on
#: a VM; polling keeps it awake for the sum most steps wait for.
SPIN_SECONDS = 0.02


class Bucket:
    """Some parameters' gradients in one flat buffer, and the all-reduce in flight on it.

    Args:
        params: parameter tensors (same dtype and device), in packing order.
        extra: room for this many more numbers after the gradients, summed with them (the
            driver's per-step values ride along instead of taking a collective of their own).

    Attributes:
        extras: the view of the buffer holding those numbers (empty when ``extra`` is 0).
    """

    def __init__(self, params: Sequence[Tensor], extra: int = 0):
        self.params = list(params)
        numel = sum(p.numel() for p in self.params)
        self.buffer = torch.empty(numel + extra, dtype=self.params[0].dtype,
                                  device=self.params[0].device)
        self.views, offset = [], 0
        for p in self.params:
            self.views.append(self.buffer[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        self.extras = self.buffer[numel:]
        self._work: dist.Work | None = None
        self._weight: tuple[float, Tensor] | None = None

    def _factor(self, weight: float) -> Tensor:
        """``weight`` as a 0-d tensor like the buffer (kept while it stays the same): one
        dispatched op per gradient instead of five for a Python number."""
        if self._weight is None or self._weight[0] != weight:
            self._weight = (weight, torch.tensor(weight, dtype=self.buffer.dtype,
                                                 device=self.buffer.device))
        return self._weight[1]

    def launch(self, grads: Sequence[Tensor | float | None], weight: float,
               extras: Tensor | None = None) -> None:
        """Pack ``weight * grad`` for each parameter (None: a zero gradient; a float: a
        constant one) and ``extras`` if given, and start summing the buffer over the ranks."""
        if extras is not None:
            self.extras.copy_(extras)
        for view, grad in zip(self.views, grads):
            if grad is None:
                view.zero_()
            elif isinstance(grad, Tensor):
                torch.mul(grad, self._factor(weight), out=view)
            else:
                view.fill_(float(grad) * weight)
        with collective():
            self._work = dist.all_reduce(self.buffer, async_op=True)

    def wait(self) -> list[Tensor]:
        """Wait for the sum; the reduced gradient of each parameter (views of the buffer)."""
        if self._work is not None:
            work, self._work = self._work, None
            with collective():
                if self.buffer.is_cpu:
                    deadline = time.perf_counter() + SPIN_SECONDS
                    while not work.is_completed() and time.perf_counter() < deadline:
                        os.sched_yield()
                work.wait()
        return self.views


def make_buckets(params: Sequence[Tensor], bucket_bytes: int = DEFAULT_BUCKET_BYTES
                 ) -> list[Bucket]:
    """Cut ``params`` (in the order their gradients become ready) into buckets of about
    ``bucket_bytes``; a bucket never mixes dtypes or devices."""
    buckets, current, size = [], [], 0
    for p in params:
        if current and (size + p.numel() * p.element_size() > bucket_bytes
                        or p.dtype != current[0].dtype or p.device != current[0].device):
            buckets.append(Bucket(current))
            current, size = [], 0
        current.append(p)
        size += p.numel() * p.element_size()
    if current:
        buckets.append(Bucket(current))
    return buckets


__all__ = ["DEFAULT_BUCKET_BYTES", "Bucket", "make_buckets"]
