"""Summing the fast engine's gradients over ranks while its backward pass runs.

A training plan's backward is a list of kernels run in reverse order. A parameter's gradient
is final after the last of them that writes it (the kernel reading the parameter that comes
first in the forward), so its bucket can start its `torch.distributed.all_reduce`
(asynchronous) right then, and travel while the kernels before it compute: the last layers'
gradients are on the wire while the first layers' are being computed. The optimizer step
waits for every bucket. `GradientReducer` is what `optimus.distributed` attaches to a
`FastEngine` (``engine.grad_sync``); the engine then never fuses an update into a kernel,
since every gradient must be summed before any parameter moves.
"""
from __future__ import annotations

import torch

from ..distributed.buckets import DEFAULT_BUCKET_BYTES, Bucket, make_buckets
from .plan import Plan, Program

Tensor = torch.Tensor


def ready_steps(program: Program, plan: Plan) -> dict[int, int]:
    """``{gradient slot: index in plan.backward after which it is final}`` for each gradient
    the plan hands to the optimizer (-1: no kernel writes it, it is a zero gradient)."""
    op_of = {id(op.node): op for op in program.ops}
    wanted = {slot for _, slot in plan.grads}
    ready = dict.fromkeys(wanted, -1)
    for index, (kernel, _) in enumerate(plan.backward):
        op = op_of.get(id(kernel.node))
        if op is None:  # unknown to the program: count it as writing every gradient
            written = wanted
        else:
            written = {program.slot[op.ins[p]] for p in kernel.need if p in op.ins}
        for slot in written & wanted:
            ready[slot] = index
    return ready


class PlanSchedule:
    """The buckets of one training plan and after which backward step each is complete.

    The last bucket to leave also carries two numbers: this rank's weighted loss and the
    reducer's ``flag`` (the driver's "stop requested"), so that a step needs one collective
    round, not two; `GradientReducer.summed` holds their sums after the step.
    """

    def __init__(self, program: Program, plan: Plan, bucket_bytes: int):
        ready = ready_steps(program, plan)
        order = sorted(range(len(plan.grads)), key=lambda k: ready[plan.grads[k][1]])
        self.buckets = make_buckets([plan.grads[k][0] for k in order], bucket_bytes)
        last = self.buckets[-1]
        self.buckets[-1] = Bucket(last.params, extra=2)
        self.slots: list[list[int]] = []
        self.launch_after: dict[int, list[int]] = {}
        position = 0
        for index, bucket in enumerate(self.buckets):
            members = order[position:position + len(bucket.params)]
            position += len(bucket.params)
            self.slots.append([plan.grads[k][1] for k in members])
            last = max(ready[plan.grads[k][1]] for k in members)
            self.launch_after.setdefault(last, []).append(index)
        self._launched = [False] * len(self.buckets)
        self.extras: Tensor | None = None  # set by `begin` for the step under way

    def begin(self, loss: Tensor, weight: float, flag: float) -> None:
        """The forward pass is done: what the last bucket will carry."""
        dtype = self.buckets[-1].buffer.dtype
        self.extras = torch.stack([loss.detach().reshape(()).to(dtype) * weight,
                                   torch.tensor(flag, dtype=dtype, device=loss.device)])

    def after_step(self, index: int, g: list, weight: float) -> None:
        """Backward step ``index`` ran: launch the buckets it completed."""
        for b in self.launch_after.get(index, ()):
            self._launch(b, g, weight)

    def _launch(self, b: int, g: list, weight: float) -> None:
        extras = self.extras if b == len(self.buckets) - 1 else None
        self.buckets[b].launch([g[slot] for slot in self.slots[b]], weight, extras)
        self._launched[b] = True

    def finish(self, g: list, weight: float) -> tuple[list[tuple[Tensor, Tensor]],
                                                       tuple[float, float]]:
        """Launch what is left, wait for every sum: ``(parameter, summed gradient)`` pairs,
        and the sums of the weighted loss and of the flag."""
        pairs = []
        for b, bucket in enumerate(self.buckets):
            if not self._launched[b]:
                self._launch(b, g, weight)
        for b, bucket in enumerate(self.buckets):
            pairs.extend(zip(bucket.params, bucket.wait()))
            self._launched[b] = False
        loss, flag = self.buckets[-1].extras.tolist()
        return pairs, (loss, flag)


class GradientReducer:
    """Sums a `FastEngine`'s gradients over the process group, each rank's scaled by
    ``weight`` (its share of the global batch's rows, set before every step).

    Args:
        bucket_bytes: about how many bytes of gradients each all-reduce carries.

    Attributes:
        flag: a number summed with the gradients (set before each step; the driver's "stop").
        summed: after a step, the sums of the ranks' weighted losses and flags (the global
            loss and the number of ranks asking to stop); the driver takes it.
    """

    def __init__(self, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.bucket_bytes = bucket_bytes
        self.weight = 1.0
        self.flag = 0.0
        self.summed: tuple[float, float] | None = None
        self._schedules: dict[int, tuple[Plan, PlanSchedule]] = {}

    def schedule(self, program: Program, plan: Plan) -> PlanSchedule:
        """The (cached) bucket schedule of ``plan``."""
        entry = self._schedules.get(id(plan))
        if entry is None or entry[0] is not plan:
            entry = self._schedules[id(plan)] = (plan, PlanSchedule(program, plan,
                                                                    self.bucket_bytes))
        return entry[1]


__all__ = ["GradientReducer", "PlanSchedule", "ready_steps", "Bucket"]
