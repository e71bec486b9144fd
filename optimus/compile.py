"""Lowering a wired graph to PyTorch: one `torch.nn.Module` and its training step.

This is the reference path: a straight-line forward over the ordered nodes, differentiated by
autograd, with updates applied by the graph's step rule (a `torch.optim` optimizer). The fast
path (`optimus.fast`) must agree with it; a graph uses it for nodes the fast path lacks, or
when built with ``engine='reference'``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .nodes.base import Node
from .ports import Parameter

Tensor = torch.Tensor


@dataclass(frozen=True)
class Step:
    """One node call: where its inputs come from and where its outputs go."""

    node: Node
    sources: tuple[tuple[str, str], ...]  # (input port, value name)
    targets: tuple[tuple[str, str], ...]  # (output port, value name)


class GraphModule(torch.nn.Module):
    """The graph's forward: each node's function called in topological order.

    Parameters are the nodes' own tensors, so modules of graphs that share nodes share them.
    """

    def __init__(self, steps: Sequence[Step], params: Sequence[Parameter],
                 results: Sequence[str]):
        super().__init__()
        self.steps = tuple(steps)
        self.results = tuple(results)
        for param in params:
            self.register_parameter(param.name.replace(".", "__"), param.tensor)
        self._param_values = {p.name: p.tensor for p in params}  # parameters as sources
        self._node_params = [
            (step, {k: p.tensor for k, p in step.node.params.items()}) for step in self.steps]

    def forward(self, inputs: Mapping[str, Tensor], training: bool = False) -> dict[str, Tensor]:
        values = {**self._param_values, **inputs}
        for step, params in self._node_params:
            args = {port: values[name] for port, name in step.sources}
            out = step.node.outputs_of(args, params, training)
            for port, name in step.targets:
                values[name] = out[port]
        return {name: values[name] for name in self.results}


class Trainer:
    """Takes update steps: gradients of the loss by autograd, applied by a torch optimizer.

    Args:
        module: the graph's forward.
        loss: name of the value to minimise.
        optimizer: the graph's optimizer, one param group per learning-rate input, each
            group's ``name`` being that input's name.
    """

    def __init__(self, module: GraphModule, loss: str, optimizer: torch.optim.Optimizer):
        self.module = module
        self.loss = loss
        self.optimizer = optimizer
        self._param_ids = {id(t) for t in module._param_values.values()}

    def step(self, inputs: Mapping[str, Tensor], rates: Mapping[str, float]) -> dict[str, Tensor]:
        """Forward in training mode, then move each group by its rate; returns the outputs
        as computed before the update."""
        active = []
        for group in self.optimizer.param_groups:
            group["lr"] = rates[group["name"]]
            if group["lr"] != 0.0:
                active.extend(group["params"])
        with torch.enable_grad():
            values = self.module(inputs, training=True)
            grads = torch.autograd.grad(values[self.loss], active, allow_unused=True)
        # Outputs wired straight from a parameter must show it before the update.
        values = {k: t.detach().clone() if id(t) in self._param_ids else t.detach()
                  for k, t in values.items()}
        for param, grad in zip(active, grads):
            param.grad = torch.zeros_like(param) if grad is None else grad
        try:
            self.optimizer.step()
        finally:
            for param in active:
                param.grad = None
        return values


class ReferenceEngine:
    """The reference path behind a `Graph` call: `GraphModule` forward, autograd backward.

    Args:
        module: the graph's forward.
        loss: value name of the loss, or None.
        optimizer: the graph's optimizer, or None for a graph without updates.
    """

    name = "reference"

    def __init__(self, module: GraphModule, loss: str | None,
                 optimizer: torch.optim.Optimizer | None):
        self.module = module
        self.optimizer = optimizer
        self.trainer = None if optimizer is None else Trainer(module, loss, optimizer)
        self.used_inputs = None  # every input is converted

    def infer(self, inputs: Mapping[str, Tensor], fresh: bool = True) -> dict[str, Tensor]:
        """Outputs of a call without update (``fresh``, the first chunk of a call: nothing
        is kept between chunks here)."""
        with torch.no_grad():
            values = self.module(inputs, training=False)
        ids = self.trainer._param_ids if self.trainer else {
            id(t) for t in self.module._param_values.values()}
        return {k: t.clone() if id(t) in ids else t for k, t in values.items()}

    def train(self, inputs: Mapping[str, Tensor], rates: Mapping[str, float]
              ) -> dict[str, Tensor]:
        """One update step; the outputs are those computed before it."""
        return self.trainer.step(inputs, rates)


def build_optimizer(step_rule, groups: Mapping[str, Sequence[Parameter]]
                    ) -> torch.optim.Optimizer | None:
    """The graph's optimizer: one group per learning-rate input, ``lr`` set at each call."""
    if not groups:
        return None
    return step_rule.build([{"params": [p.tensor for p in params], "lr": 0.0, "name": name}
                            for name, params in groups.items()])
