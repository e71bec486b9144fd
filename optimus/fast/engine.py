"""`FastEngine`: runs a graph's static plans, and takes update steps with its torch optimizer.

The engine is what a `Graph` calls unless built with ``engine='reference'``. Each node runs
its registered kernel, or, when there is none, an `AutogradKernel` (the node's own forward,
differentiated by autograd); `FastEngine.reasons` says why for each such node. A training call
runs the plan's forward kernels, then their explicit backward in reverse, hands the gradients
to the graph's `torch.optim` optimizer (the one `Graph.optimizer` returns, so checkpoints see
its state) and steps it. Parameters of a plain-SGD group (no momentum, no weight decay) that a
single kernel can update in place are updated inside that kernel's backward instead, and never
get a gradient tensor; the result is the same ``p - lr * grad``. The optimizer is used as the
step rule built it: the engine changes none of its settings but ``lr``.

Under several processes, ``optimus.distributed`` sets ``grad_sync`` (a
`optimus.fast.reduce.GradientReducer`): each bucket of gradients is then summed over the ranks
as soon as the backward pass has completed it, and no update is fused into a kernel.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..ports import Parameter, Shape
from ..compat import set_grad_enabled as _set_grad_enabled  # no_grad without the context
from . import blocked
from .fusion import fuse
from .plan import Plan, Program, lower

Tensor = torch.Tensor

class FastEngine:
    """Inference and training calls of one graph through explicit kernels.

    Args:
        steps: the graph's node steps in topological order (`optimus.compile.Step`).
        shapes: static shape of every value name.
        inputs: names of the graph's Inputs.
        params: every parameter, by name.
        results: value names a call returns, one per graph output.
        loss: value name of the loss, or None.
        optimizer: the graph's optimizer (param groups named after learning-rate Inputs),
            or None for a graph without updates.

    Attributes:
        reasons: ``{node name: reason}`` for the nodes that run as an `AutogradKernel`.
        grad_sync: None, or the `optimus.fast.reduce.GradientReducer` summing gradients over
            a process group before each optimizer step (set by ``optimus.distributed``).
    """

    name = "fast"

    def __init__(self, steps: Sequence, shapes: Mapping[str, Shape], inputs: Sequence[str],
                 params: Mapping[str, Parameter], results: Sequence[str], loss: str | None,
                 optimizer: torch.optim.Optimizer | None):
        ops, self.reasons = lower(steps, shapes)
        ops = fuse(ops, keep=set(results))
        self.program = Program(ops, inputs, params, results, loss)
        self.optimizer = optimizer
        self.used_inputs = frozenset(name for name, _ in self.program.inputs)
        options = blocked.plan(self.program, set(results))
        self._bounds = [o["bound"] for o in options.values() if "bound" in o]
        self._inference = self.program.inference(options)
        self._plans: dict[tuple, Plan] = {}  # by group states and autocast dtype
        self._device_type = next((p.tensor.device.type for p in params.values()), "cpu")
        self._plain_sgd = type(optimizer) is torch.optim.SGD
        self.grad_sync = None
        if optimizer is not None:
            ids = {id(p.tensor): name for name, p in params.items()}
            self._group_params = [[ids[id(t)] for t in group["params"]]
                                  for group in optimizer.param_groups]

    def infer(self, inputs: Mapping[str, Tensor], fresh: bool = True) -> dict[str, Tensor]:
        """Outputs of a call without update (training-mode nodes inactive), in the
        parameters' precision, under ``torch.autocast`` too. ``fresh``: the first (or only)
        chunk of a call, where what is read from the parameters alone is read again
        (`blocked.ChainBound`); later chunks of the same call pass False."""
        if fresh:
            for bound in self._bounds:
                bound.refresh()
        if torch.is_autocast_enabled(self._device_type):
            with torch.autocast(self._device_type, enabled=False):
                return self._infer(inputs)
        return self._infer(inputs)

    def _infer(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        plan = self._inference
        v = _slots(plan, inputs)
        enabled = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            for kernel, release in plan.forward:
                kernel.forward(v, False)
                for slot in release:
                    v[slot] = None
            return _results(plan, v)
        finally:
            _set_grad_enabled(enabled)

    def train(self, inputs: Mapping[str, Tensor], rates: Mapping[str, float]
              ) -> dict[str, Tensor]:
        """One update step; returns the outputs computed before the update.

        ``rates[group name]`` becomes that group's ``lr``; a group at 0 does not move. Under
        ``torch.autocast``, the kernels that can (`Kernel.autocasts`: convolutions, dense
        layers) compute their products in autocast's dtype; values between kernels,
        gradients, parameters and the update stay in the parameters' precision, except the
        maps between two such kernels (`Kernel.keeps_low`).
        """
        if torch.is_autocast_enabled(self._device_type):
            dtype = torch.get_autocast_dtype(self._device_type)
            with torch.autocast(self._device_type, enabled=False):  # the kernels cast
                return self._train(inputs, rates, dtype)
        return self._train(inputs, rates, None)

    def _train(self, inputs: Mapping[str, Tensor], rates: Mapping[str, float],
               dtype: torch.dtype | None) -> dict[str, Tensor]:
        sync = self.grad_sync
        fusable = self._plain_sgd and sync is None  # summed gradients cannot be fused
        key, lrs = [], []
        for group in self.optimizer.param_groups:
            lr = group["lr"] = rates[group["name"]]
            key.append(0 if lr == 0.0 else 2 if fusable and self._is_plain(group) else 1)
            lrs.append(lr)
        key.append(dtype)
        key = tuple(key)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._training_plan(key[:-1], dtype)

        v = _slots(plan, inputs)
        enabled = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            for kernel, _ in plan.forward:
                kernel.forward(v, True)
            results = _results(plan, v)
            g: list = [None] * len(v)
            g[plan.loss] = 1.0
            schedule = sync.schedule(self.program, plan) if sync and plan.grads else None
            if schedule is not None:
                schedule.begin(v[plan.loss], sync.weight, sync.flag)
            for index, (kernel, dead) in enumerate(plan.backward):
                kernel.backward(v, g, lrs)
                if schedule is not None:
                    schedule.after_step(index, g, sync.weight)
                for slot in dead:
                    v[slot] = g[slot] = None
            if schedule is not None:
                pairs, sync.summed = schedule.finish(g, sync.weight)
                self._step_summed(pairs)
            elif plan.grads:
                self._step(plan, g)
        finally:
            _set_grad_enabled(enabled)
        return results

    def _step(self, plan: Plan, g: list) -> None:
        for param, slot in plan.grads:
            grad = g[slot]
            if grad is None:  # no path to the loss: a zero gradient, as autograd gives
                grad = torch.zeros_like(param)
            elif not isinstance(grad, Tensor):
                grad = torch.full_like(param, grad)
            elif not grad.is_contiguous():  # torch's fused CPU Adam misreads strided grads
                grad = grad.contiguous()
            param.grad = grad
        try:
            self.optimizer.step()
        finally:
            for param, _ in plan.grads:
                param.grad = None

    def _step_summed(self, pairs: list) -> None:
        """The optimizer step with gradients summed over the ranks (views of the buckets)."""
        for param, grad in pairs:
            param.grad = grad
        try:
            self.optimizer.step()
        finally:
            for param, _ in pairs:
                param.grad = None

    @staticmethod
    def _is_plain(group: dict) -> bool:
        return (group.get("momentum", 0) == 0 and group.get("weight_decay", 0) == 0
                and not group.get("maximize", False))

    def _training_plan(self, key: tuple[int, ...], dtype: torch.dtype | None = None) -> Plan:
        active, fusable = {}, {}
        for index, (state, names) in enumerate(zip(key, self._group_params)):
            for name in names:
                if state:
                    active[name] = index
                if state == 2:
                    fusable[name] = index
        return self.program.training(active, fusable, dtype)


def _slots(plan: Plan, inputs: Mapping[str, Tensor]) -> list:
    """A fresh slot list for one call of ``plan``: its constants, and the inputs in place."""
    v = plan.template.copy()
    for name, slot in plan.inputs:
        v[slot] = inputs[name]
    return v


def _results(plan: Plan, v: list) -> dict[str, Tensor]:
    """The call's outputs: copies of parameters (never a live one), and values in the default
    memory order (kernels may have computed them channels-last or transposed)."""
    return {name: v[slot].clone() if is_param else v[slot].contiguous()
            for name, slot, is_param in plan.results}
